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
        let cluster = try await LocalPostgres.startEphemeral(settings: .init(maxConnections: 20))
        #expect(try await TestSupport.psql(cluster, "show max_connections").text == "20")
        cluster.stopImmediately()
        #expect(!FileManager.default.fileExists(atPath: cluster.directory))
        #expect(!TestSupport.isListening(on: cluster.port))
    }
}
