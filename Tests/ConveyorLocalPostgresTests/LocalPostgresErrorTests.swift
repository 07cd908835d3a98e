import ConveyorLocalPostgres
import Foundation
import Testing

@Suite struct LocalPostgresErrorTests {
    @Test("a cluster directory too long for a Unix socket path is refused before anything is created")
    func socketPathTooLong() async throws {
        let directory = "/tmp/conveyor-lpg-test-" + String(repeating: "x", count: 90)
        let error = await #expect(throws: LocalPostgresError.self) {
            try await LocalPostgres.startPersistent(at: directory)
        }
        #expect(error?.code == .socketPathTooLong)
        #expect(error?.description.contains("choose a cluster directory at most") == true)
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    @Test("the error description is one line with the remedy, and the debug description adds the details")
    func descriptions() {
        let error = LocalPostgresError(
            code: .binariesNotFound,
            message: "PostgreSQL server binaries not found; install them",
            details: "stderr line 1\nstderr line 2\n"
        )
        #expect(error.description == "PostgreSQL server binaries not found; install them")
        #expect(error.debugDescription == "[BINARIES_NOT_FOUND] \(error.description)\nstderr line 1\nstderr line 2")
        #expect(LocalPostgresError.Code.startFailed.rawValue == "START_FAILED")
    }

    @Test("the installed server binaries are found with their major version")
    func findsBinaries() throws {
        let binaries = try LocalPostgres.findBinaries()
        #expect(binaries.version >= 10)
        #expect(binaries.pgCtl == binaries.directory + "/pg_ctl")
        #expect(FileManager.default.isExecutableFile(atPath: binaries.initdb))
    }
}
