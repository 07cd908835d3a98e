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

@Suite struct PersistentClusterTests {
    @Test("a persistent cluster keeps its tables across a stop and a new start")
    func dataSurvivesRestart() async throws {
        let directory = TestSupport.scratchPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = LocalPostgres.Settings(durable: true, extra: ["work_mem": "8MB"])

        let first = try await LocalPostgres.startPersistent(at: directory, settings: settings)
        #expect(!first.isEphemeral)
        #expect(first.directory == directory)
        #expect(first.socketDirectory == directory + "/run")
        let created = try await TestSupport.psql(
            first,
            "create table kept (id int); insert into kept values (42); show fsync; show work_mem"
        )
        #expect(created.status == 0, "\(created.text)")
        #expect(created.text == "on\n8MB")
        try await first.stop()
        #expect(FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION"))
        #expect(FileManager.default.fileExists(atPath: directory + "/server.log"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/owner.pid"))
        #expect(!TestSupport.isListening(on: first.port))

        let second = try await LocalPostgres.startPersistent(at: directory)
        let kept = try await TestSupport.psql(second, "select id from kept; show fsync")
        #expect(kept.text == "42\noff")
        try await second.stop()
        #expect(FileManager.default.fileExists(atPath: directory + "/data/PG_VERSION"))
    }

    @Test("a persistent cluster used by a live process cannot be started a second time")
    func secondStartIsRefused() async throws {
        let directory = TestSupport.scratchPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cluster = try await LocalPostgres.startPersistent(at: directory)
        let error = await #expect(throws: LocalPostgresError.self) {
            try await LocalPostgres.startPersistent(at: directory)
        }
        #expect(error?.code == .clusterInUse)
        #expect(TestSupport.isListening(on: cluster.port))
        try await cluster.stop()
    }

    @Test("a server left running by an owner that exited is stopped and started again on a fresh port, data kept")
    func abandonedServerIsRestarted() async throws {
        let directory = TestSupport.scratchPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // A child process starts the cluster, creates a table and exits without stopping the server.
        await #expect(processExitsWith: .success) { [directory = directory as String] in
            // Durable, so that the commit is on disk before the server is killed.
            let cluster = try await LocalPostgres.startPersistent(at: directory, settings: .init(durable: true))
            let created = try await TestSupport.psql(cluster, "create table kept (id int)")
            #expect(created.status == 0, "\(created.text)")
        }
        let abandoned = try String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8)
            .split(separator: "\n")
        let abandonedPID = try #require(abandoned.first.flatMap { Int32($0) })
        let abandonedPort = try #require(abandoned.dropFirst(3).first.flatMap { Int($0) })
        #expect(TestSupport.isListening(on: abandonedPort))

        let cluster = try await LocalPostgres.startPersistent(at: directory)
        #expect(cluster.port != abandonedPort)
        #expect(!TestSupport.isListening(on: abandonedPort))
        #expect(!TestSupport.isRunning(abandonedPID))
        #expect(try await TestSupport.psql(cluster, "select count(*) from kept").text == "0")
        let owner = try String(contentsOfFile: directory + "/owner.pid", encoding: .utf8)
        #expect(owner.hasPrefix("\(getpid())\n"))
        try await cluster.stop()
    }
}
