import ConveyorLocalPostgres
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

    @Test("as root, a cluster directory the postgres user cannot reach is refused with the directory to fix")
    func unreachableDirectory() async throws {
        let parent = TestSupport.scratchPath()
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: parent)
        let directory = parent + "/cluster"

        if geteuid() == 0 {
            let error = await #expect(throws: LocalPostgresError.self) {
                try await LocalPostgres.startPersistent(at: directory)
            }
            #expect(error?.code == .directoryNotAccessible)
            #expect(error?.description.contains("chmod o+x \(parent)") == true)
            #expect(!FileManager.default.fileExists(atPath: directory))
        } else {
            // The owner of the directory runs the server itself, so nothing stands in the way.
            let cluster = try await LocalPostgres.startPersistent(at: directory)
            try await cluster.stop()
        }
    }
}
