import Foundation

/// A durable workflow: plain async Swift whose steps survive crashes, restarts and deploys.
///
/// ```swift
/// struct FulfilOrder: Workflow {
///     static let name = "fulfil-order"
///     var payments: Payments
///
///     func run(_ order: Order, context: WorkflowContext) async throws -> Receipt {
///         let charge = try await context.step("charge-card") { try await payments.charge(order) }
///         try await context.sleep("cool-off", for: .minutes(10))
///         let approval = try await context.waitForSignal("approved", as: Approval.self, timeout: .hours(24))
///         return Receipt(charge: charge, approvedBy: approval.by)
///     }
/// }
/// ```
///
/// A run executes ``run(_:context:)`` from the top every time it resumes (after a crash, a sleep, a signal, a
/// child): a step that completed before returns its stored output without running again. The one rule is that
/// side effects go in steps, and that the same input reaches the same steps in the same order; a resumed run that
/// reaches a different step where a stored one stands fails with `NON_DETERMINISTIC`.
public protocol Workflow: Sendable {
    associatedtype Input: Codable & Sendable
    associatedtype Output: Codable & Sendable

    /// The stable name of the workflow, 1–128 characters from `A-Z a-z 0-9 _ - . :`. Stored runs refer to it.
    static var name: String { get }

    /// The version of the code, recorded with every run it starts (default 1). A worker only runs the versions it
    /// has registered; a run of another version waits for a worker that has it.
    static var version: Int { get }

    /// The body of the workflow.
    func run(_ input: Input, context: WorkflowContext) async throws -> Output
}

extension Workflow {
    public static var version: Int { 1 }
}

/// The identifier of a workflow run: chosen by the caller (`"order-42"`) or generated.
public struct WorkflowRunID: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible,
    ExpressibleByStringInterpolation
{
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public init(stringLiteral value: String) { self.rawValue = value }

    /// A new random id.
    public static func generate() -> WorkflowRunID { WorkflowRunID(UUID().uuidString.lowercased()) }

    public var description: String { self.rawValue }

    public init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.rawValue)
    }

    /// Checks the id: 1–200 bytes of printable characters without control characters.
    func validated() throws -> WorkflowRunID {
        guard !self.rawValue.isEmpty, self.rawValue.utf8.count <= 200,
            !self.rawValue.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw ConveyorError(
                .invalidOption,
                "a workflow run id must be 1-200 bytes without control characters"
            )
        }
        return self
    }
}

/// How a run is started. Every `var` has a default.
public struct WorkflowOptions: Sendable, Hashable {
    /// The run's id; `nil` generates one. Starting an id that exists returns the existing run.
    public var id: WorkflowRunID?
    /// The queue whose workers execute the run (default `default`).
    public var queue: String = "default"
    /// The tenant (default `default`).
    public var namespace: String = "default"
    /// A time after which the run fails with `DEADLINE_EXCEEDED` wherever it stands.
    public var deadline: Date?
    /// The version to record; `nil` takes the workflow type's ``Workflow/version``.
    public var version: Int?

    public init(
        id: WorkflowRunID? = nil,
        queue: String = "default",
        namespace: String = "default",
        deadline: Date? = nil,
        version: Int? = nil
    ) {
        self.id = id
        self.queue = queue
        self.namespace = namespace
        self.deadline = deadline
        self.version = version
    }
}

/// Where a run stands.
public enum WorkflowRunStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Ready to execute or executing on a worker.
    case running
    /// Suspended until a time, a signal or a child (see ``WorkflowRunRecord/waits``), or until a worker with
    /// its version starts.
    case waiting
    /// Returned an output.
    case completed
    /// Ended with an error (``WorkflowRunRecord/errorCode``).
    case failed
    /// Cancelled by a client or its parent.
    case cancelled

    /// Whether the run has ended.
    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }
}

/// The error a workflow sees when one of its steps failed for good, and the error a run fails with if the workflow
/// does not catch it.
public struct WorkflowStepFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The step's name.
    public var step: String
    /// A stable code: `STEP_FAILED` (the body threw on its last attempt), `TIMEOUT`, `OUTPUT_TOO_LARGE`,
    /// `SIGNAL_TIMEOUT`, or the child run's own error code.
    public var code: String
    public var message: String

    public init(step: String, code: String, message: String) {
        self.step = step
        self.code = code
        self.message = message
    }

    public var description: String { "step \(self.step) failed (\(self.code)): \(self.message)" }
}
