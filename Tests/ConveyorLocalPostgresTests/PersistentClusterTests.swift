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
            first, "create table kept (id int); insert into kept values (42); show fsync; show work_mem"
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

    @Test("a server left running by a dead owner is stopped and started again on a fresh port, data kept")
    func abandonedServerIsRestarted() async throws {
        let directory = TestSupport.scratchPath()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await LocalPostgres.startPersistent(at: directory)
        #expect(try await TestSupport.psql(first, "create table kept (id int)").status == 0)
        try await first.stop()

        // Start the server behind LocalPostgres's back, as a process that then died would have left it.
        let port = first.port
        let pgCtl = first.binaries.pgCtl
        let options = "-c listen_addresses=127.0.0.1 -c port=\(port) -c unix_socket_directories=\(directory)/run"
        let pgCtlArguments = ["-D", directory + "/data", "-l", directory + "/server.log", "-w", "-o", options, "start"]
        let started =
            geteuid() == 0
            ? try await TestSupport.run("/usr/sbin/runuser", ["-u", "postgres", "--", pgCtl] + pgCtlArguments)
            : try await TestSupport.run(pgCtl, pgCtlArguments)
        #expect(started.status == 0, "\(started.text)")
        #expect(TestSupport.isListening(on: port))
        let deadPID = try await TestSupport.deadProcessID()
        try "\(deadPID)\n".write(toFile: directory + "/owner.pid", atomically: true, encoding: .utf8)

        let second = try await LocalPostgres.startPersistent(at: directory)
        #expect(!TestSupport.isListening(on: port) || second.port == port)
        #expect(try await TestSupport.psql(second, "select count(*) from kept").text == "0")
        let owner = try String(contentsOfFile: directory + "/owner.pid", encoding: .utf8)
        #expect(owner.hasPrefix("\(getpid())\n"))
        try await second.stop()
    }
}
