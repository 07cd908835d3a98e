import ConveyorCore
import Foundation

/// A validated job ready to be inserted: what the client hands to a ``JobStore``.
public struct NewJob: Sendable, Hashable {
    public var kind: String
    public var queue: String
    public var namespace: String
    /// The arguments as a JSON text.
    public var argumentsJSON: String
    public var priority: Int
    /// Absolute time, if the caller gave one.
    public var runAt: Date?
    /// Delay after the insert's `now()`, in milliseconds (0 when ``runAt`` is set or nothing was asked for).
    public var delayMilliseconds: Int64
    public var maxAttempts: Int
    public var timeoutMilliseconds: Int64?
    public var tags: [String]
    public var uniqueKey: String?
    public var replayOf: JobID?

    /// Defaults applied when neither the call nor the job type sets a value.
    public enum Defaults {
        public static let queue = "default"
        public static let namespace = "default"
        public static let priority = 0
        public static let maxAttempts = 20
        public static let maximumArgumentBytes = 1 << 20
    }

    /// Validates `options` and builds a job from raw JSON arguments.
    ///
    /// - Throws: ``ConveyorError`` with `INVALID_KIND`, `INVALID_QUEUE_NAME`, `INVALID_NAMESPACE`, `INVALID_OPTION`,
    ///   `MALFORMED_ARGUMENTS` or `ARGUMENTS_TOO_LARGE`. Nothing is written.
    public init(
        kind: String,
        argumentsJSON: String,
        options: JobOptions,
        maximumArgumentBytes: Int = Defaults.maximumArgumentBytes,
        argumentsAreTrusted: Bool = false
    ) throws {
        if let violation = NameValidation.checkLabel(kind) {
            throw ConveyorError(.invalidKind, "invalid job kind: \(violation.explanation)")
        }
        let queue = options.queue ?? Defaults.queue
        try ConveyorClient.Queues.validate(queue)
        let namespace = options.namespace ?? Defaults.namespace
        try ConveyorClient.Tenants.validate(namespace)
        let priority = options.priority ?? Defaults.priority
        guard (0...9).contains(priority) else {
            throw ConveyorError(.invalidOption, "priority must be between 0 and 9, got \(priority)")
        }
        let maxAttempts = options.maxAttempts ?? Defaults.maxAttempts
        guard (1...1000).contains(maxAttempts) else {
            throw ConveyorError(.invalidOption, "max attempts must be between 1 and 1000, got \(maxAttempts)")
        }
        var delayMilliseconds: Int64 = 0
        if let runAt = options.runAt {
            // to_timestamp and the microsecond conversion both hold this range with room to spare.
            guard runAt.timeIntervalSince1970.isFinite, abs(runAt.timeIntervalSince1970) <= 1000 * 365.25 * 86_400
            else {
                throw ConveyorError(.invalidOption, "run time must be within 1000 years of 1970")
            }
        } else if let delay = options.delay {
            delayMilliseconds = delay.wholeMilliseconds
            guard (0...Self.longestDelayMilliseconds).contains(delayMilliseconds) else {
                throw ConveyorError(.invalidOption, "delay must be between 0 and 100 years")
            }
        }
        var timeoutMilliseconds: Int64?
        if let timeout = options.timeout {
            let milliseconds = timeout.wholeMilliseconds
            guard (1...Self.longestDelayMilliseconds).contains(milliseconds) else {
                throw ConveyorError(.invalidOption, "timeout must be between 1 ms and 100 years")
            }
            timeoutMilliseconds = milliseconds
        }
        let tags = options.tags ?? []
        guard tags.count <= 32 else {
            throw ConveyorError(.invalidOption, "at most 32 tags are allowed, got \(tags.count)")
        }
        for tag in tags {
            if let violation = NameValidation.checkLabel(tag) {
                throw ConveyorError(.invalidOption, "invalid tag: \(violation.explanation)")
            }
        }
        if let uniqueKey = options.uniqueKey {
            guard !uniqueKey.isEmpty, uniqueKey.utf8.count <= 255, !uniqueKey.utf8.contains(0) else {
                throw ConveyorError(.invalidOption, "unique key must be 1-255 bytes without NUL characters")
            }
        }
        try Self.checkArguments(argumentsJSON, maximumArgumentBytes: maximumArgumentBytes, trusted: argumentsAreTrusted)

        self.kind = kind
        self.queue = queue
        self.namespace = namespace
        self.argumentsJSON = argumentsJSON
        self.priority = priority
        self.runAt = options.runAt
        self.delayMilliseconds = delayMilliseconds
        self.maxAttempts = maxAttempts
        self.timeoutMilliseconds = timeoutMilliseconds
        self.tags = tags
        self.uniqueKey = options.uniqueKey
        self.replayOf = nil
    }
}

extension NewJob {
    /// The longest delay or timeout a job may ask for: 100 years. (A run time may be up to 1000 years from 1970.)
    public static let longestDelaySeconds: Double = RetryPolicy.longestDelaySeconds
    static let longestDelayMilliseconds = Int64(longestDelaySeconds * 1000)

    /// Checks encoded arguments: at most `maximumArgumentBytes`, one JSON object, and text PostgreSQL accepts.
    /// `trusted` text came from `JSONEncoder`, so it is valid JSON and only its shape and the NUL rule are checked.
    ///
    /// - Throws: ``ConveyorError`` with `ARGUMENTS_TOO_LARGE` or `MALFORMED_ARGUMENTS`.
    static func checkArguments(_ json: String, maximumArgumentBytes: Int, trusted: Bool) throws {
        guard json.utf8.count <= maximumArgumentBytes else {
            throw ConveyorError(
                .argumentsTooLarge,
                "arguments are \(json.utf8.count) bytes; the limit is \(maximumArgumentBytes)"
            )
        }
        if trusted {
            try JSONValidation.checkEncodedObject(json)
        } else {
            try JSONValidation.checkObject(json)
        }
    }
}

/// Checks that a JSON text is one JSON object (what `args` must hold) and that PostgreSQL will accept it.
enum JSONValidation {
    /// The cheap check for text that `JSONEncoder` produced: it is valid JSON, so only its shape and the NUL rule
    /// are checked.
    static func checkEncodedObject(_ text: String) throws {
        guard text.utf8.first == UInt8(ascii: "{") else {
            throw ConveyorError(.malformedArguments, "arguments must encode as a JSON object")
        }
        try self.checkNoNUL(text)
    }

    static func checkNoNUL(_ text: String) throws {
        // PostgreSQL's jsonb rejects the NUL character (\u0000) in strings; refuse it here with a clear code.
        if Self.containsEscapedNUL(text) {
            throw ConveyorError(.malformedArguments, "arguments must not contain the NUL character (\\u0000)")
        }
    }

    /// Whether valid JSON text escapes a NUL character (`\u0000`). Backslashes occur only in escapes in valid
    /// JSON, so each one starts an escape; an escaped backslash followed by `u0000` is not a NUL.
    static func containsEscapedNUL(_ text: String) -> Bool {
        var bytes = text.utf8.makeIterator()
        while let byte = bytes.next() {
            guard byte == UInt8(ascii: "\\") else { continue }
            guard bytes.next() == UInt8(ascii: "u") else { continue }
            var zeros = 0
            while zeros < 4, bytes.next() == UInt8(ascii: "0") { zeros += 1 }
            if zeros == 4 { return true }
        }
        return false
    }

    static func checkObject(_ text: String) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw ConveyorError(.malformedArguments, "arguments are not valid JSON", underlying: error)
        }
        guard object is [String: Any] else {
            throw ConveyorError(.malformedArguments, "arguments must be a JSON object")
        }
        try self.checkNoNUL(text)
    }
}
