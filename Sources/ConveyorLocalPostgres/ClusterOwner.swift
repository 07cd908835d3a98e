import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process that started a cluster's server, as recorded in the cluster's `owner.pid`.
///
/// The file holds the process id on its first line and, on Linux, the process start time (field 22 of
/// `/proc/<pid>/stat`) on the second, so that a process id reused by an unrelated process is not mistaken for the
/// owner. A file with only a process id is accepted too.
struct ClusterOwner: Sendable, Equatable {
    /// The owner's process id.
    var pid: pid_t
    /// The owner's start time in clock ticks since boot, when known.
    var startTime: UInt64?

    /// This process.
    static var current: ClusterOwner {
        let pid = getpid()
        return ClusterOwner(pid: pid, startTime: startTime(of: pid))
    }

    /// The owner recorded in `path`, or `nil` when the file is missing or unreadable.
    static func read(from path: String) -> ClusterOwner? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = lines.first, let pid = pid_t(first), pid > 0 else { return nil }
        return ClusterOwner(pid: pid, startTime: lines.dropFirst().first.flatMap { UInt64($0) })
    }

    /// Writes this owner to `path`, replacing the file atomically.
    func write(to path: String) throws {
        let text = startTime.map { "\(pid)\n\($0)\n" } ?? "\(pid)\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Whether the recorded process still runs: `kill(pid, 0)` does not fail with `ESRCH`, it is not a zombie
    /// and, when both are known, its start time matches. This process counts as alive only when
    /// `isCurrentProcessAlive`.
    func isAlive(isCurrentProcessAlive: Bool) -> Bool {
        if pid == getpid() {
            return isCurrentProcessAlive
        }
        if kill(pid, 0) != 0 && errno == ESRCH {
            return false
        }
        guard let status = Self.status(of: pid) else {
            return true
        }
        if status.state == "Z" {
            return false
        }
        if let startTime, let actual = status.startTime, actual != startTime {
            return false
        }
        return true
    }

    private static func startTime(of pid: pid_t) -> UInt64? {
        status(of: pid)?.startTime
    }

    /// The state (field 3) and start time (field 22) from `/proc/<pid>/stat`, or `nil` where there is no `/proc`.
    private static func status(of pid: pid_t) -> (state: Character?, startTime: UInt64?)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let commandEnd = stat.lastIndex(of: ")")
        else {
            return nil
        }
        // Fields after the parenthesized command name start with field 3 (state); starttime is field 22.
        let fields = stat[stat.index(after: commandEnd)...].split(separator: " ")
        return (fields.first?.first, fields.count > 19 ? UInt64(fields[19]) : nil)
    }
}
