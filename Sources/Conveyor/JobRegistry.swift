import ConveyorCore
import Foundation

/// The job types a worker can run, by kind, with their handlers and policies.
///
/// ```swift
/// var registry = JobRegistry()
/// registry.register(SendReceipt.self, timeout: .seconds(30)) { args, context in
///     try await mailer.sendReceipt(order: args.orderID)
/// }
/// ```
public struct JobRegistry: Sendable {
    struct Entry: Sendable {
        var kind: String
        var timeout: Duration?
        var retryPolicy: RetryPolicy
        var retryOnTimeout: Bool
        var run: @Sendable (_ argumentsJSON: String, _ context: JobContext) async throws -> Void
    }

    private(set) var entries: [String: Entry] = [:]

    public init() {}

    /// The kinds registered so far.
    public var kinds: [String] { self.entries.keys.sorted() }

    /// Registers the handler for `Arguments.kind`, replacing any earlier one.
    ///
    /// - Parameters:
    ///   - type: The job type.
    ///   - timeout: How long one attempt may run before it is cancelled and counted as a `TIMEOUT` failure. `nil`
    ///     uses the timeout stored with the job, if any.
    ///   - retryPolicy: Backoff between failed attempts.
    ///   - retryOnTimeout: When `false`, a timed-out attempt dead-letters the job with reason `TIMEOUT`.
    ///   - handler: Runs one attempt. Return to complete; throw to retry; throw ``JobControl`` to snooze, cancel or
    ///     discard; throw a ``NonRetryableError`` to dead-letter.
    public mutating func register<Arguments: JobArguments>(
        _ type: Arguments.Type,
        timeout: Duration? = nil,
        retryPolicy: RetryPolicy = .default,
        retryOnTimeout: Bool = true,
        handler: @escaping @Sendable (Arguments, JobContext) async throws -> Void
    ) {
        self.entries[Arguments.kind] = Entry(
            kind: Arguments.kind,
            timeout: timeout,
            retryPolicy: retryPolicy,
            retryOnTimeout: retryOnTimeout,
            run: { json, context in
                let arguments: Arguments
                do {
                    arguments = try JSONDecoder().decode(Arguments.self, from: Data(json.utf8))
                } catch {
                    throw ArgumentDecodingFailure(message: "cannot decode \(Arguments.kind) arguments: \(error)")
                }
                try await handler(arguments, context)
            }
        )
    }

    /// Registers a handler that takes the raw JSON arguments, for kinds without a Swift type.
    public mutating func register(
        kind: String,
        timeout: Duration? = nil,
        retryPolicy: RetryPolicy = .default,
        retryOnTimeout: Bool = true,
        handler: @escaping @Sendable (_ argumentsJSON: String, JobContext) async throws -> Void
    ) {
        self.entries[kind] = Entry(
            kind: kind,
            timeout: timeout,
            retryPolicy: retryPolicy,
            retryOnTimeout: retryOnTimeout,
            run: handler
        )
    }

    func entry(for kind: String) -> Entry? { self.entries[kind] }
}

struct ArgumentDecodingFailure: Error {
    var message: String
}
