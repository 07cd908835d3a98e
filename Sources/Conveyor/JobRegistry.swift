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

    struct WorkflowEntry: Sendable {
        var name: String
        var version: Int
        var maximumOutputBytes: Int
        /// Decodes the input, runs the workflow and encodes its output.
        var run: @Sendable (_ inputJSON: String, _ context: WorkflowContext) async throws -> String
    }

    private(set) var entries: [String: Entry] = [:]
    /// Workflows by name, then version.
    private(set) var workflows: [String: [Int: WorkflowEntry]] = [:]

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

    /// The largest output a workflow step or run may store by default, in bytes (1 MiB).
    public static let defaultMaximumOutputBytes = 1 << 20

    /// Registers a workflow under its ``Workflow/name`` and ``Workflow/version``, replacing any earlier one of that
    /// name and version. Register one type per version to keep older runs going while new ones start on new code.
    ///
    /// - Parameters:
    ///   - workflow: The workflow, with whatever it needs to do its work (clients, configuration).
    ///   - maximumOutputBytes: The largest encoded output of a step, signal payload, child input or run
    ///     (default 1 MiB). A step whose output is larger fails with `OUTPUT_TOO_LARGE`.
    public mutating func register<W: Workflow>(
        workflow: W,
        maximumOutputBytes: Int = JobRegistry.defaultMaximumOutputBytes
    ) {
        let entry = WorkflowEntry(
            name: W.name,
            version: W.version,
            maximumOutputBytes: maximumOutputBytes,
            run: { inputJSON, context in
                let input: W.Input
                do {
                    input = try WorkflowCoding.decoder.decode(W.Input.self, from: Data(inputJSON.utf8))
                } catch {
                    throw ConveyorError(
                        .malformedArguments,
                        "cannot decode the input of \(W.name) as \(W.Input.self)",
                        underlying: error
                    )
                }
                let output = try await workflow.run(input, context: context)
                return try context.execution.encode(output, what: "the output of run \(context.runID)")
            }
        )
        self.workflows[W.name, default: [:]][W.version] = entry
    }

    /// The registered workflows, as `name@version`.
    public var workflowVersions: [String] {
        self.workflows.flatMap { name, versions in versions.keys.map { "\(name)@\($0)" } }.sorted()
    }

    func workflow(named name: String, version: Int) -> WorkflowEntry? { self.workflows[name]?[version] }
}

struct ArgumentDecodingFailure: Error {
    var message: String
}
