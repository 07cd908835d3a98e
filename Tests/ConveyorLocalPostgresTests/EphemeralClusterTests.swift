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

@Suite struct EphemeralClusterTests {
    @Test("an ephemeral cluster accepts connections over its URL and leaves nothing behind when stopped")
    func startConnectStop() async throws {
        let cluster = try await LocalPostgres.startEphemeral()
        #expect(cluster.isEphemeral)
        #expect(cluster.directory.hasPrefix(LocalPostgres.defaultEphemeralBase + "/"))
        #expect(cluster.url == "postgres://conveyor@127.0.0.1:\(cluster.port)/conveyor")
        #expect(FileManager.default.fileExists(atPath: cluster.socketDirectory + "/.s.PGSQL.\(cluster.port)"))
        #expect(FileManager.default.fileExists(atPath: cluster.directory + "/owner.pid"))

        let result = try await TestSupport.psql(
            cluster,
            "select 1, current_user, current_database(), current_setting('fsync'), "
                + "current_setting('synchronous_commit'), current_setting('max_connections')"
        )
        #expect(result.status == 0, "\(result.text)")
        #expect(result.text == "1|conveyor|conveyor|off|off|200")

        try await cluster.stop()
        #expect(!FileManager.default.fileExists(atPath: cluster.directory))
        #expect(!TestSupport.isListening(on: cluster.port))
        try await cluster.stop()  // A second stop does nothing.
    }

    @Test("starting a cluster stops and deletes an ephemeral cluster whose owner process died")
    func staleClusterIsReaped() async throws {
        let stale = try await LocalPostgres.startEphemeral()
        let stalePostmaster = try TestSupport.postmasterPID(of: stale)
        #expect(TestSupport.isListening(on: stale.port))
        let deadPID = try await TestSupport.deadProcessID()
        try "\(deadPID)\n".write(toFile: stale.directory + "/owner.pid", atomically: true, encoding: .utf8)

        let fresh = try await LocalPostgres.startEphemeral()
        #expect(!FileManager.default.fileExists(atPath: stale.directory))
        #expect(!TestSupport.isListening(on: stale.port))
        #expect(!TestSupport.isRunning(stalePostmaster))
        #expect(FileManager.default.fileExists(atPath: fresh.directory))
        #expect(try await TestSupport.psql(fresh, "select 1").text == "1")

        try await fresh.stop()
        try await stale.stop()  // Already gone: does nothing and does not fail.
    }

    @Test("stopImmediately stops the server and deletes the directory synchronously")
    func stopImmediately() async throws {
        let settings = LocalPostgres.Settings(maxConnections: 20, extra: ["cluster_name": "it's a \"test\" $HOME"])
        let cluster = try await LocalPostgres.startEphemeral(settings: settings)
        let shown = try await TestSupport.psql(cluster, "show max_connections; show cluster_name")
        #expect(shown.text == "20\nit's a \"test\" $HOME")
        cluster.stopImmediately()
        #expect(!FileManager.default.fileExists(atPath: cluster.directory))
        #expect(!TestSupport.isListening(on: cluster.port))
    }

    @Test("a cluster registered with stopAtExit is stopped and deleted when its process exits")
    func stopAtExit() async throws {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
            let cluster = try await LocalPostgres.startEphemeral()
            cluster.stopAtExit()
            print("cluster \(cluster.port) \(cluster.directory)")
        }
        let output = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("cluster ") })
        let fields = line.split(separator: " ")
        let port = try #require(fields.count == 3 ? Int(fields[1]) : nil)
        #expect(!TestSupport.isListening(on: port))
        #expect(!FileManager.default.fileExists(atPath: String(fields[2])))
    }
}
