import ConveyorLocalPostgres
import Dispatch
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Helpers shared by the tests: running psql, probing ports and processes.
enum TestSupport {
    /// What a finished program printed (standard output and standard error together) and its exit status.
    struct Output {
        var status: Int32
        var text: String
    }

    /// Runs `sql` with the cluster's own `psql` over TCP through `cluster.url`, printing unaligned tuples only.
    static func psql(_ cluster: LocalPostgres, _ sql: String) async throws -> Output {
        let psql = try #require(cluster.binaries.psql, "psql is missing from \(cluster.binaries.directory)")
        return try await run(psql, [cluster.url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    /// Runs `executable` with `arguments` without blocking the caller's thread; output is captured.
    static func run(_ executable: String, _ arguments: [String]) async throws -> Output {
        // On a thread of its own: Dispatch's global queues also run every Swift task of the test process.
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                let pipe = Pipe()
                process.standardInput = FileHandle.nullDevice
                process.standardOutput = pipe
                process.standardError = pipe
                do {
                    try process.run()
                    // Read to the end before waiting, so a full pipe cannot stall the program.
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    continuation.resume(returning: Output(status: process.terminationStatus, text: text))
                } catch {
                    continuation.resume(throwing: error)
                }
            }.start()
        }
    }

    /// The id of a process that has exited (and been reaped), for an `owner.pid` whose owner is dead.
    static func deadProcessID() async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exit 0"]
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            process.terminationHandler = { _ in continuation.resume() }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume()
            }
        }
        let pid = process.processIdentifier
        #expect(pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
        return pid
    }

    /// The postmaster's process id from `<directory>/data/postmaster.pid`.
    static func postmasterPID(of cluster: LocalPostgres) throws -> Int32 {
        let text = try String(contentsOfFile: cluster.directory + "/data/postmaster.pid", encoding: .utf8)
        return try #require(text.split(separator: "\n").first.flatMap { Int32($0) })
    }

    /// Whether process `pid` runs: it exists and, where `/proc` tells, is not a zombie (an exited server whose
    /// parent, often the container's init, has not reaped it yet).
    static func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno != ESRCH else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let commandEnd = stat.lastIndex(of: ")")
        else {
            return true
        }
        return stat[stat.index(after: commandEnd)...].split(separator: " ").first != "Z"
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func isListening(on port: Int) -> Bool {
        #if canImport(Darwin)
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #else
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #endif
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(clamping: port).bigEndian
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }

    /// A new, empty, short directory path under /tmp that does not exist yet.
    static func scratchPath() -> String {
        "/tmp/conveyor-lpg-test-" + UUID().uuidString.prefix(8).lowercased()
    }
}
