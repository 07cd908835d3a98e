import Foundation

/// CPU time that processes have used, read from `/proc`: how a workload's cost splits between the worker,
/// PostgreSQL and the benchmark itself.
enum ProcessCPU {
    /// User plus system CPU time of one process, in seconds; 0 if it cannot be read.
    static func seconds(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return 0 }
        return self.seconds(stat: stat)
    }

    /// User plus system CPU time of every process whose command name is `postgres` (the server and its backends).
    static func postgresSeconds() -> Double {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return 0 }
        var total = 0.0
        for entry in entries where entry.first?.isNumber == true {
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                stat.contains("(postgres)")
            else { continue }
            total += self.seconds(stat: stat)
        }
        return total
    }

    /// Fields 14 and 15 of `/proc/PID/stat` (utime, stime), counted after the parenthesised command name.
    static func seconds(stat: String) -> Double {
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so utime (field 14) is fields[11] and stime fields[12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
