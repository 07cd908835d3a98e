import Dispatch
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One external program invocation whose standard output and standard error are captured.
///
/// Programs are started with `posix_spawn` and reaped with `waitpid`, not with Foundation's `Process`: on Linux,
/// `Process` learns that a child exited when a socket it hands to the child is closed, and a server that `pg_ctl`
/// starts in the background inherits that socket, so `pg_ctl start` would seem to run until the server stops.
/// Here the child gets only standard input (`/dev/null`), standard output and standard error (anonymous temporary
/// files, read after exit); every other descriptor is closed in it.
struct Command: Sendable {
    /// What a finished command left behind.
    struct Outcome: Sendable {
        /// The exit status; 128 + the signal number when killed by a signal; 127 when it could not be launched.
        var status: Int32
        /// Everything the program wrote to standard output.
        var output: String
        /// Everything the program wrote to standard error, or why it could not be launched.
        var errorOutput: String

        /// Whether the program exited with status 0.
        var succeeded: Bool { status == 0 }

        /// Standard error, or standard output when standard error is empty, trimmed.
        var diagnostics: String {
            let error = errorOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            return error.isEmpty ? output.trimmingCharacters(in: .whitespacesAndNewlines) : error
        }
    }

    /// The program to run, as an absolute path.
    var executable: String
    /// The arguments, without the program itself.
    var arguments: [String]
    /// Variables set in addition to the inherited environment.
    var environment: [String: String] = [:]
    /// The working directory of the program; the current one when `nil`.
    var workingDirectory: String?

    init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        workingDirectory: String? = nil
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// The command as a shell-like line, for logs and messages.
    var displayLine: String {
        ([executable] + arguments).map(Self.quotedForDisplay).joined(separator: " ")
    }

    /// Runs the command and suspends until it exits. The wait blocks a thread of its own: not the caller's, and not
    /// one of Dispatch's global queues, whose few threads also run every Swift task of the process (a `pg_ctl`
    /// waited for there stalled everything else for seconds).
    func run(logger: Logger) async -> Outcome {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: runSynchronously(logger: logger))
            }
            thread.start()
        }
    }

    /// Runs the command and blocks the calling thread until it exits; usable from an `atexit` handler.
    func runSynchronously(logger: Logger) -> Outcome {
        logger.debug("running \(displayLine)")
        do {
            let output = try CaptureFile()
            let errorOutput = try CaptureFile()
            let pid = try spawn(output: output.descriptor, errorOutput: errorOutput.descriptor)
            let status = Self.waitForExit(of: pid)
            return Outcome(status: status, output: output.contents(), errorOutput: errorOutput.contents())
        } catch {
            return Outcome(status: 127, output: "", errorOutput: "could not launch \(executable): \(error)")
        }
    }

    private func spawn(output: Int32, errorOutput: Int32) throws -> pid_t {
        #if canImport(Darwin)
        var fileActions: posix_spawn_file_actions_t?
        var attributes: posix_spawnattr_t?
        #else
        var fileActions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #endif
        try check(posix_spawn_file_actions_init(&fileActions), "posix_spawn_file_actions_init")
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        try check(posix_spawnattr_init(&attributes), "posix_spawnattr_init")
        defer { posix_spawnattr_destroy(&attributes) }

        try check(posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0), "addopen")
        try check(posix_spawn_file_actions_adddup2(&fileActions, output, 1), "adddup2")
        try check(posix_spawn_file_actions_adddup2(&fileActions, errorOutput, 2), "adddup2")
        var executable = self.executable
        var arguments = self.arguments
        if let workingDirectory {
            if SpawnExtensions.canChangeDirectory {
                try check(SpawnExtensions.addChangeDirectory(&fileActions, workingDirectory), "addchdir")
            } else {
                arguments = ["-c", #"cd "$0" && exec "$@""#, workingDirectory, executable] + arguments
                executable = "/bin/sh"
            }
        }

        // Default signal handling and an empty signal mask, whatever this process uses.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2] {
            sigaddset(&defaultSignals, signal)
        }
        try check(posix_spawnattr_setsigmask(&attributes, &noSignals), "setsigmask")
        try check(posix_spawnattr_setsigdefault(&attributes, &defaultSignals), "setsigdefault")
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        #if canImport(Darwin)
        flags |= Int32(POSIX_SPAWN_CLOEXEC_DEFAULT)
        #else
        try SpawnExtensions.addCloseDescriptors(&fileActions, from: 3)
        #endif
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), "setflags")

        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environmentEntries())
        var pid = pid_t()
        try check(posix_spawn(&pid, executable, &fileActions, &attributes, argv.pointers, envp.pointers), executable)
        return pid
    }

    /// The inherited environment as `NAME=value` entries, without libpq's `PG*` variables and with C locale
    /// messages (they are matched in English), plus `environment`.
    private func environmentEntries() -> [String] {
        var variables = ProcessInfo.processInfo.environment
        for key in variables.keys where key.hasPrefix("PG") || key.hasPrefix("LC_") {
            variables[key] = nil
        }
        variables["LC_ALL"] = "C"
        variables["LANG"] = "C"
        variables.merge(environment) { _, new in new }
        return variables.map { "\($0.key)=\($0.value)" }
    }

    /// Waits for `pid` to exit and returns its exit status (128 + signal number when killed by a signal).
    private static func waitForExit(of pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { return 127 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    private func check(_ result: Int32, _ call: String) throws {
        guard result == 0 else {
            throw POSIXFailure(call: call, code: result)
        }
    }

    private static func quotedForDisplay(_ word: String) -> String {
        let plain = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=:@,+%"))
        if !word.isEmpty, word.unicodeScalars.allSatisfy(plain.contains) {
            return word
        }
        return ShellQuoting.quote(word)
    }
}

extension Command {
    /// A failed POSIX call, by name and error number.
    private struct POSIXFailure: Error, CustomStringConvertible {
        var call: String
        var code: Int32

        var description: String { "\(call): \(String(cString: strerror(code)))" }
    }

    /// An unlinked temporary file: it disappears with its descriptor, so nothing is left on disk.
    private final class CaptureFile {
        let descriptor: Int32

        init() throws {
            var template = Array((NSTemporaryDirectory() + "/conveyor-capture-XXXXXX").utf8CString)
            let descriptor = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return -1 }
                return mkstemp(base)
            }
            guard descriptor >= 0 else {
                throw POSIXFailure(call: "mkstemp", code: errno)
            }
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            template.withUnsafeBufferPointer { buffer in
                if let base = buffer.baseAddress {
                    _ = unlink(base)
                }
            }
            self.descriptor = descriptor
        }

        deinit {
            close(descriptor)
        }

        func contents() -> String {
            guard lseek(descriptor, 0, SEEK_SET) == 0 else { return "" }
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count > 0 {
                    data.append(contentsOf: buffer[0..<count])
                } else if count == 0 || errno != EINTR {
                    break
                }
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// A null-terminated array of C strings, freed with the value.
    private final class CStringArray {
        let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
        private let count: Int

        init(_ strings: [String]) {
            count = strings.count + 1
            pointers = .allocate(capacity: count)
            for (index, string) in strings.enumerated() {
                (pointers + index).initialize(to: strdup(string))
            }
            (pointers + strings.count).initialize(to: nil)
        }

        deinit {
            for index in 0..<count {
                free(pointers[index])
            }
            pointers.deinitialize(count: count)
            pointers.deallocate()
        }
    }
}
