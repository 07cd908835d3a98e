import Foundation

/// Quoting for the one place a string goes through `/bin/sh`: `pg_ctl` hands its `-o` options to a shell.
enum ShellQuoting {
    /// `word` in single quotes, with embedded single quotes written as `'\''`.
    static func quote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
