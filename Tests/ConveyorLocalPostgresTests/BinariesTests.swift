import ConveyorLocalPostgres
import Foundation
import Testing

@Suite struct BinariesTests {
    @Test("the installed server binaries are found with their major version")
    func findsBinaries() throws {
        let binaries = try LocalPostgres.findBinaries()
        #expect(binaries.version >= 10)
        #expect(binaries.pgCtl == binaries.directory + "/pg_ctl")
        #expect(FileManager.default.isExecutableFile(atPath: binaries.initdb))
    }

    @Test("the major version matches what postgres --version prints")
    func versionMatches() async throws {
        let binaries = try LocalPostgres.findBinaries()
        let printed = try await TestSupport.run(binaries.postgres, ["--version"])
        #expect(printed.text.contains("(PostgreSQL) \(binaries.version)."))
        #expect(binaries.postgres == binaries.directory + "/postgres")
        #expect(binaries.createdb == binaries.directory + "/createdb")
    }
}
