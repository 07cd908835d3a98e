import Foundation

/// Who the CLI records as the performer of operator actions: `cli:<user>`.
enum Performer {
    static var cli: String {
        let environment = ProcessInfo.processInfo.environment
        return "cli:\(environment["USER"] ?? environment["LOGNAME"] ?? "unknown")"
    }
}
