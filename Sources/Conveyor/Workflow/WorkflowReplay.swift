import Synchronization

/// What one execution of a run knows about its stored steps, and the checks that keep a replay honest.
///
/// Each durable call (a step, a sleep, a signal wait, a child) has an index: the number of durable calls before it
/// in this execution. A new step is stored with its index as its position. When the run resumes, a call is matched
/// to its stored step by name, and its position is checked: reaching another name where a stored step stands is
/// `NON_DETERMINISTIC`, as is reaching a stored name at another position. Steps that ran beside others (`async let`,
/// task groups) may start in any order, so a stored step marked concurrent matches at any position. A call is
/// concurrent when it is made from a task other than the workflow's own, or while another call of the run is in
/// progress.
final class WorkflowReplay: Sendable {
    enum Begun {
        /// The call was stored by an earlier execution.
        case stored(StoredWorkflowStep)
        /// The call is new; store it at this position.
        case new(position: Int)
    }

    private struct State {
        var stored: [String: StoredWorkflowStep]
        var nameAtPosition: [Int: String]
        var nextIndex = 0
        var called: Set<String> = []
        var running: Set<String> = []
        var concurrent: Set<String> = []
        var signals: [PendingWorkflowSignal]
        var children: [WorkflowRunID: WorkflowChildState]
        /// A durable call asked the run to suspend; every later call suspends too.
        var suspending = false
    }

    private let state: Mutex<State>
    /// The task that runs the workflow: a durable call made from any other task (an `async let`, a task group's
    /// child) runs beside the workflow's own code, and is stored as concurrent.
    private let rootTask: Int?

    init(_ run: WorkflowExecutionState) {
        self.rootTask = withUnsafeCurrentTask { $0?.hashValue }
        var nameAtPosition: [Int: String] = [:]
        for step in run.steps where step.kind != .patch {
            nameAtPosition[step.position] = step.name
        }
        self.state = Mutex(
            State(
                stored: Dictionary(run.steps.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }),
                nameAtPosition: nameAtPosition,
                signals: run.signals,
                children: Dictionary(run.children.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            )
        )
    }

    /// Starts the durable call `name`.
    ///
    /// - Throws: `DUPLICATE_STEP` when this execution reached the name before; `NON_DETERMINISTIC` when the stored
    ///   steps say the run took another path; ``WorkflowSuspended`` once the run is suspending.
    func begin(_ name: String, kind: WorkflowStepKind) throws -> Begun {
        try self.state.withLock { state in
            if state.suspending { throw WorkflowSuspended() }
            guard state.called.insert(name).inserted else {
                throw ConveyorError(
                    .duplicateStep,
                    "the run reached step \(name) twice; every durable call of a run needs a name of its own"
                )
            }
            let index = state.nextIndex
            state.nextIndex += 1
            if withUnsafeCurrentTask(body: { $0?.hashValue }) != self.rootTask {
                state.concurrent.insert(name)
            }
            if !state.running.isEmpty {
                // Beside another call of this run: neither position is fixed.
                state.concurrent.insert(name)
                state.concurrent.formUnion(state.running)
            }
            state.running.insert(name)
            let standing = state.nameAtPosition[index].flatMap { state.stored[$0] }
            if let stored = state.stored[name] {
                guard stored.kind == kind else {
                    throw ConveyorError(
                        .nonDeterministic,
                        "the run reached \(kind.rawValue) \(name) at position \(index), where a \(stored.kind.rawValue) "
                            + "of that name is stored"
                    )
                }
                if stored.position != index, !stored.concurrent, let standing, !standing.concurrent {
                    throw ConveyorError(
                        .nonDeterministic,
                        "the run reached step \(name) at position \(index), where step \(standing.name) is stored "
                            + "(\(name) is stored at position \(stored.position))"
                    )
                }
                return .stored(stored)
            }
            if let standing, !standing.concurrent {
                throw ConveyorError(
                    .nonDeterministic,
                    "the run reached new step \(name) at position \(index), where step \(standing.name) is stored"
                )
            }
            return .new(position: index)
        }
    }

    /// Ends the durable call `name` (it returned or threw).
    func end(_ name: String) {
        self.state.withLock { _ = $0.running.remove(name) }
    }

    /// Whether `name` ran beside another call of this run.
    func isConcurrent(_ name: String) -> Bool {
        self.state.withLock { $0.concurrent.contains(name) }
    }

    /// Marks the run as suspending: every later durable call suspends at once.
    func suspend() {
        self.state.withLock { $0.suspending = true }
    }

    var isSuspending: Bool { self.state.withLock { $0.suspending } }

    /// Takes the oldest signal called `name` that no call of this execution took yet.
    func takeSignal(named name: String) -> PendingWorkflowSignal? {
        self.state.withLock { state in
            guard let index = state.signals.firstIndex(where: { $0.name == name }) else { return nil }
            return state.signals.remove(at: index)
        }
    }

    func child(_ id: WorkflowRunID) -> WorkflowChildState? {
        self.state.withLock { $0.children[id] }
    }

    /// Whether a `patched` marker called `name` applies: stored already, or the run is new at this point (every
    /// stored call before it was reached, so no stored step of older code lies ahead).
    func patch(_ name: String) -> (applies: Bool, isNew: Bool) {
        self.state.withLock { state in
            if state.stored[name]?.kind == .patch { return (true, false) }
            let storedCalls = state.stored.values.filter { $0.kind != .patch }
            let reachedAll = storedCalls.allSatisfy { state.called.contains($0.name) }
            return (reachedAll, reachedAll)
        }
    }
}

/// Thrown by a durable call that cannot go on until something happens (a time, a signal, a child): the run
/// suspends, and its execution ends. Do not catch it; if a workflow does, the run suspends anyway.
public struct WorkflowSuspended: Error, Sendable, CustomStringConvertible {
    public var description: String { "the workflow run suspended" }
}
