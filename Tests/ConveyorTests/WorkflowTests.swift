import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Counts how often each step body ran, by run and step.
final class StepCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func ran(_ run: WorkflowRunID, _ step: String) {
        self.counts.withLock { $0["\(run)/\(step)", default: 0] += 1 }
    }

    func count(_ run: WorkflowRunID, _ step: String) -> Int { self.counts.withLock { $0["\(run)/\(step)"] ?? 0 } }
}

struct ThreeSteps: Workflow {
    static let name = "test.three-steps"
    var counter: StepCounter

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        let a = try await context.step("a") {
            counter.ran(context.runID, "a")
            return input + 1
        }
        let b = try await context.step("b") {
            counter.ran(context.runID, "b")
            return a * 2
        }
        return try await context.step("c") {
            counter.ran(context.runID, "c")
            return b + 3
        }
    }
}

struct StepThenSignal: Workflow {
    static let name = "test.step-then-signal"
    var counter: StepCounter

    func run(_ input: String, context: WorkflowContext) async throws -> String {
        let greeting = try await context.step("greet") {
            counter.ran(context.runID, "greet")
            return "hello \(input)"
        }
        let approval = try await context.waitForSignal("approved", as: String.self)
        return "\(greeting), approved by \(approval)"
    }
}

struct WaitWithTimeout: Workflow {
    static let name = "test.wait-with-timeout"

    func run(_ input: Int, context: WorkflowContext) async throws -> String {
        do {
            return try await context.waitForSignal("never", as: String.self, timeout: .milliseconds(200))
        } catch let failure as WorkflowStepFailure where failure.code == "SIGNAL_TIMEOUT" {
            return "timed out"
        }
    }
}

struct Sleeper: Workflow {
    static let name = "test.sleeper"

    func run(_ milliseconds: Int, context: WorkflowContext) async throws -> String {
        try await context.sleep("nap", for: .milliseconds(milliseconds))
        return "rested"
    }
}

struct Doubler: Workflow {
    static let name = "test.doubler"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        try await context.step("double") { input * 2 }
    }
}

struct Parent: Workflow {
    static let name = "test.parent"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        let doubled = try await context.child(Doubler.self, input: input, id: WorkflowRunID("\(context.runID)-child"))
        return doubled + 1
    }
}

struct WaitsForever: Workflow {
    static let name = "test.waits-forever"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        try await context.waitForSignal("go", as: Int.self)
    }
}

struct ParentOfWaiter: Workflow {
    static let name = "test.parent-of-waiter"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        try await context.child(WaitsForever.self, input: input, id: WorkflowRunID("\(context.runID)-child"))
    }
}

/// Two steps and a wait; `swapped` reorders the steps, as a careless deploy would.
struct Reorderable: Workflow {
    static let name = "test.reorderable"
    var swapped: Bool

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        if swapped {
            _ = try await context.step("second") { 2 }
            _ = try await context.step("first") { 1 }
        } else {
            _ = try await context.step("first") { 1 }
            _ = try await context.step("second") { 2 }
        }
        return try await context.waitForSignal("go", as: Int.self)
    }
}

struct DuplicateName: Workflow {
    static let name = "test.duplicate-name"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        let one = try await context.step("same") { 1 }
        let two = try await context.step("same") { 2 }
        return one + two
    }
}

struct VersionOne: Workflow {
    static let name = "test.versioned"
    func run(_ input: Int, context: WorkflowContext) async throws -> String { "one" }
}

struct VersionTwo: Workflow {
    static let name = "test.versioned"
    static let version = 2
    func run(_ input: Int, context: WorkflowContext) async throws -> String { "two" }
}

struct Fanout: Workflow {
    static let name = "test.fanout"
    var counter: StepCounter

    func run(_ input: Int, context: WorkflowContext) async throws -> [Int] {
        async let a = context.step("left") {
            counter.ran(context.runID, "left")
            return input
        }
        async let b = context.step("right") {
            counter.ran(context.runID, "right")
            return input * 10
        }
        let pair = try await [a, b]
        try await context.sleep("between", for: .milliseconds(50))
        let total = try await context.step("sum") { pair.reduce(0, +) }
        return pair + [total]
    }
}

struct Retrying: Workflow {
    static let name = "test.retrying"
    var counter: StepCounter

    func run(_ input: Int, context: WorkflowContext) async throws -> String {
        let flaky = try await context.step("flaky", maxAttempts: 3, retryPolicy: .constant(.milliseconds(10))) {
            counter.ran(context.runID, "flaky")
            guard counter.count(context.runID, "flaky") >= 3 else { throw TestFailure("not yet") }
            return "ok"
        }
        do {
            try await context.step("doomed", maxAttempts: 2, retryPolicy: .constant(.milliseconds(10))) {
                counter.ran(context.runID, "doomed")
                throw TestFailure("never")
            }
        } catch let failure as WorkflowStepFailure {
            return "\(flaky), doomed: \(failure.code)"
        }
        return "unreachable"
    }
}

struct SlowStep: Workflow {
    static let name = "test.slow-step"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        try await context.step("slow", maxAttempts: 1, timeout: .milliseconds(50)) {
            try await Task.sleep(for: .seconds(30))
            return 1
        }
    }
}

struct BigOutput: Workflow {
    static let name = "test.big-output"

    func run(_ input: String, context: WorkflowContext) async throws -> String {
        try await context.step("big") { input == "nul" ? "a\u{0}b" : input }
    }
}

/// Fails at step c while `broken` is set: the bug a fork recovers from.
struct Breakable: Workflow {
    static let name = "test.breakable"
    var counter: StepCounter
    var broken: Mutex<Bool>.Box

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        let a = try await context.step("a") {
            counter.ran(context.runID, "a")
            return input + 1
        }
        let b = try await context.step("b") {
            counter.ran(context.runID, "b")
            return a + 1
        }
        return try await context.step("c", maxAttempts: 1) {
            counter.ran(context.runID, "c")
            if broken.value { throw TestFailure("the bug") }
            return b + 1
        }
    }
}

extension Mutex where Value == Bool {
    /// A shared flag.
    final class Box: Sendable {
        let state = Mutex<Bool>(true)
        var value: Bool {
            get { self.state.withLock { $0 } }
        }
        func set(_ value: Bool) { self.state.withLock { $0 = value } }
    }
}

/// Old code: one step. New code adds a step behind `patched("sms")`.
struct Patchable: Workflow {
    static let name = "test.patchable"
    var patched: Bool

    func run(_ input: Int, context: WorkflowContext) async throws -> [String] {
        var done = [try await context.step("email") { "email" }]
        if patched, try await context.patched("sms") {
            done.append(try await context.step("sms") { "sms" })
        }
        let go = try await context.waitForSignal("go", as: Int.self)
        return done + ["go \(go)"]
    }
}

/// A step that runs until it is cancelled, and says so.
struct Endless: Workflow {
    static let name = "test.endless"
    var sawCancellation: Gate

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        try await context.step("forever", maxAttempts: 1) {
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
            sawCancellation.open()
            throw CancellationError()
        }
    }
}

/// Holds a step open until the test lets it go, then waits for a signal.
struct HeldThenSignal: Workflow {
    static let name = "test.held-then-signal"
    var running: Gate
    var release: Gate

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        try await context.step("hold") {
            running.open()
            await release.wait()
        }
        return try await context.waitForSignal("go", as: Int.self)
    }
}

/// Signals another run from a step.
struct Signaller: Workflow {
    static let name = "test.signaller"

    func run(_ target: String, context: WorkflowContext) async throws -> String {
        try await context.signal(WorkflowRunID(target), "go", 5)
        return "sent"
    }
}

/// Fails the test unless `body` throws a ``ConveyorError`` with `code`.
func expectCode(
    _ code: ConveyorError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ConveyorError {
        #expect(error.code == code, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite(.database) struct WorkflowTests {
    func waitForEnd(_ db: TestDatabase, _ id: WorkflowRunID) async throws -> WorkflowRunRecord {
        try await db.waitUntil("run \(id) ended") {
            try await db.client.workflows.get(id)?.status.isFinished == true
        }
        return try #require(try await db.client.workflows.get(id))
    }

    func waitForStatus(_ db: TestDatabase, _ id: WorkflowRunID, _ status: WorkflowRunStatus) async throws {
        try await db.waitUntil("run \(id) is \(status.rawValue)") {
            try await db.client.workflows.get(id)?.status == status
        }
    }

    @Test("a run's steps run once each, in order, and its output and steps are stored")
    func stepsRunOnce() async throws {
        let db = try TestDatabase.get()
        let counter = StepCounter()
        var registry = JobRegistry()
        registry.register(workflow: ThreeSteps(counter: counter))
        let started = try await db.client.workflows.start(ThreeSteps.self, input: 4, options: .init(id: "order-4"))
        #expect(started.id == "order-4")
        #expect(!started.isExisting)
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "order-4")
            #expect(run.status == .completed)
            #expect(try run.output(as: Int.self) == 13)
            #expect(run.steps.map(\.name) == ["a", "b", "c"])
            #expect(run.steps.map(\.position) == [0, 1, 2])
            #expect(run.steps.allSatisfy { $0.status == .completed && $0.attempts == 1 })
            #expect(run.steps.map(\.outputJSON) == ["5", "10", "13"])
        }
        for step in ["a", "b", "c"] { #expect(counter.count("order-4", step) == 1) }
        let job = try #require(try await db.client.jobs.get(started.jobID))
        #expect(job.state == .completed)
    }

    @Test("starting an id that exists returns the existing run and starts nothing")
    func startIsIdempotent() async throws {
        let db = try TestDatabase.get()
        let first = try await db.client.workflows.start(Doubler.self, input: 1, options: .init(id: "same"))
        let second = try await db.client.workflows.start(Doubler.self, input: 2, options: .init(id: "same"))
        #expect(second.isExisting)
        #expect(second.jobID == first.jobID)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1)
        let run = try #require(try await db.client.workflows.get("same"))
        #expect(run.inputJSON == "1")
    }

    @Test("a run started in a transaction that rolls back does not exist")
    func rolledBackStartLeavesNothing() async throws {
        let db = try TestDatabase.get()
        struct Rollback: Error {}
        await #expect(throws: Rollback.self) {
            try await db.client.withTransaction { connection in
                try await db.client.workflows.start(Doubler.self, input: 1, options: .init(id: "gone"), on: connection)
                throw Rollback()
            }
        }
        #expect(try await db.client.workflows.get("gone") == nil)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)
        try await db.client.withTransaction { connection in
            try await db.client.workflows.start(Doubler.self, input: 1, options: .init(id: "kept"), on: connection)
        }
        #expect(try await db.client.workflows.get("kept") != nil)
    }

    @Test("a resumed run returns its stored step output without running the step again")
    func resumedRunReplaysSteps() async throws {
        let db = try TestDatabase.get()
        let counter = StepCounter()
        var registry = JobRegistry()
        registry.register(workflow: StepThenSignal(counter: counter))
        try await db.client.workflows.start(StepThenSignal.self, input: "ada", options: .init(id: "r1"))
        try await db.withWorker(registry) { _ in
            try await self.waitForStatus(db, "r1", .waiting)
            let waiting = try #require(try await db.client.workflows.get("r1"))
            #expect(waiting.steps.map(\.status) == [.completed, .waiting])
            try await db.client.workflows.signal("r1", "approved", "grace")
            let run = try await self.waitForEnd(db, "r1")
            #expect(try run.output(as: String.self) == "hello ada, approved by grace")
        }
        #expect(counter.count("r1", "greet") == 1)
        let run = try #require(try await db.client.workflows.get("r1"))
        let job = try #require(try await db.client.jobs.get(run.jobID))
        // Two executions: the first suspended, the second completed; the suspension used up no attempt.
        #expect(job.attempts.map(\.outcome) == [.suspended, .completed])
        #expect(job.attempt == 1)
    }

    @Test("a signal sent before the run waits is kept and received")
    func earlySignalIsKept() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: StepThenSignal(counter: StepCounter()))
        try await db.client.workflows.start(StepThenSignal.self, input: "bo", options: .init(id: "early"))
        try await db.client.workflows.signal("early", "approved", "first")
        try await db.client.workflows.signal("early", "approved", "second")
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "early")
            #expect(try run.output(as: String.self) == "hello bo, approved by first")
        }
        // The second signal stays, unreceived.
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.workflow_signals WHERE received_at IS NULL") == 1)
    }

    @Test("a signal to a run that does not exist or has ended is refused with a code")
    func signalRefusals() async throws {
        let db = try TestDatabase.get()
        await expectCode(.workflowNotFound) { try await db.client.workflows.signal("nobody", "x", 1) }
        var registry = JobRegistry()
        registry.register(workflow: Doubler())
        try await db.client.workflows.start(Doubler.self, input: 1, options: .init(id: "done"))
        try await db.withWorker(registry) { _ in _ = try await self.waitForEnd(db, "done") }
        await expectCode(.invalidWorkflowState) { try await db.client.workflows.signal("done", "x", 1) }
        await expectCode(.malformedArguments) {
            try await db.client.workflows.signal("done", "x", payloadJSON: "{not json")
        }
    }

    @Test("a signal wait with a timeout ends with SIGNAL_TIMEOUT when no signal comes")
    func signalWaitTimesOut() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: WaitWithTimeout())
        try await db.client.workflows.start(WaitWithTimeout.self, input: 0, options: .init(id: "t"))
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            let run = try await self.waitForEnd(db, "t")
            #expect(try run.output(as: String.self) == "timed out")
            #expect(run.steps.first?.status == .failed)
            #expect(run.steps.first?.errorCode == "SIGNAL_TIMEOUT")
        }
    }

    @Test("a durable sleep gives up the lease and resumes on time without a poll")
    func sleepResumesOnTime() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: Sleeper())
        try await db.client.workflows.start(Sleeper.self, input: 300, options: .init(id: "s"))
        // A poll an hour away: only the sleep's own timer can wake the run.
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            let run = try await self.waitForEnd(db, "s")
            #expect(try run.output(as: String.self) == "rested")
            // Two executions: the first suspended and gave up its lease (no attempt counted), the second ended it.
            let job = try #require(try await db.client.jobs.get(run.jobID))
            #expect(job.attempts.map(\.outcome) == [.suspended, .completed])
            #expect(job.attempt == 1)
        }
        // By the database's clock, the run ended no earlier than the sleep's end.
        let slept = try await db.scalar(
            """
            SELECT (extract(epoch FROM w.finished_at - w.started_at) * 1000)::int
            FROM {schema}.workflow_steps w WHERE w.run_id = 's' AND w.name = 'nap'
            """
        )
        #expect(slept >= 300)
    }

    @Test("a child's output reaches its parent, which resumes when the child ends")
    func childOutputReachesParent() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: Parent())
        registry.register(workflow: Doubler())
        try await db.client.workflows.start(Parent.self, input: 20, options: .init(id: "p"))
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            let run = try await self.waitForEnd(db, "p")
            #expect(try run.output(as: Int.self) == 41)
            #expect(run.steps.map(\.kind) == [.child])
        }
        let child = try #require(try await db.client.workflows.get("p-child"))
        #expect(child.parentID == "p")
        #expect(try child.output(as: Int.self) == 40)
        let page = try await db.client.workflows.list(.init(parentID: "p"))
        #expect(page.runs.map(\.id) == ["p-child"])
    }

    @Test("cancelling a waiting parent cancels it and its waiting child")
    func cancelReachesChildren() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: ParentOfWaiter())
        registry.register(workflow: WaitsForever())
        try await db.client.workflows.start(ParentOfWaiter.self, input: 1, options: .init(id: "pc"))
        try await db.withWorker(registry) { _ in
            try await self.waitForStatus(db, "pc", .waiting)
            try await db.waitUntil("the child waits") {
                try await db.client.workflows.get("pc-child")?.status == .waiting
            }
            let cancelled = try await db.client.workflows.cancel("pc")
            #expect(cancelled.status == .cancelled)
            let child = try #require(try await db.client.workflows.get("pc-child"))
            #expect(child.status == .cancelled)
            #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'cancelled'") == 2)
        }
    }

    @Test("a resumed run that reaches its steps in another order fails with NON_DETERMINISTIC naming both")
    func changedOrderIsNonDeterministic() async throws {
        let db = try TestDatabase.get()
        var before = JobRegistry()
        before.register(workflow: Reorderable(swapped: false))
        try await db.client.workflows.start(Reorderable.self, input: 1, options: .init(id: "nd"))
        try await db.withWorker(before) { _ in try await self.waitForStatus(db, "nd", .waiting) }
        var after = JobRegistry()
        after.register(workflow: Reorderable(swapped: true))
        try await db.client.workflows.signal("nd", "go", 7)
        try await db.withWorker(after) { _ in
            let run = try await self.waitForEnd(db, "nd")
            #expect(run.status == .failed)
            #expect(run.errorCode == "NON_DETERMINISTIC")
            #expect(run.errorMessage?.contains("second") == true)
            #expect(run.errorMessage?.contains("first") == true)
        }
    }

    @Test("a run that reaches one step name twice fails with DUPLICATE_STEP")
    func duplicateStepNameIsRefused() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: DuplicateName())
        try await db.client.workflows.start(DuplicateName.self, input: 1, options: .init(id: "dup"))
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "dup")
            #expect(run.status == .failed)
            #expect(run.errorCode == "DUPLICATE_STEP")
            #expect(run.steps.map(\.name) == ["same"])
        }
    }

    @Test("a run of a version no worker has waits, visibly, and runs once a worker with it starts")
    func unknownVersionWaits() async throws {
        let db = try TestDatabase.get()
        var old = JobRegistry()
        old.register(workflow: VersionOne())
        try await db.client.workflows.start(VersionTwo.self, input: 1, options: .init(id: "v2"))
        try await db.withWorker(old) { _ in
            try await db.waitUntil("the run waits for its version") {
                try await db.client.workflows.get("v2")?.waitsForVersion == true
            }
            #expect(try await db.client.workflows.get("v2")?.status == .waiting)
        }
        var new = JobRegistry()
        new.register(workflow: VersionOne())
        new.register(workflow: VersionTwo())
        try await db.withWorker(new) { _ in
            let run = try await self.waitForEnd(db, "v2")
            #expect(try run.output(as: String.self) == "two")
            #expect(run.version == 2)
        }
    }

    @Test("parallel steps run once each and replay in any order after a suspension")
    func parallelStepsAreDurable() async throws {
        let db = try TestDatabase.get()
        let counter = StepCounter()
        var registry = JobRegistry()
        registry.register(workflow: Fanout(counter: counter))
        try await db.client.workflows.start(Fanout.self, input: 3, options: .init(id: "fan"))
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "fan")
            #expect(run.status == .completed, "\(run.errorCode ?? "") \(run.errorMessage ?? "")")
            #expect(try run.output(as: [Int].self) == [3, 30, 33])
        }
        #expect(counter.count("fan", "left") == 1)
        #expect(counter.count("fan", "right") == 1)
    }

    @Test("a run whose deadline passed fails with DEADLINE_EXCEEDED")
    func deadlineFailsRun() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: WaitsForever())
        try await db.client.workflows.start(
            WaitsForever.self,
            input: 1,
            options: .init(id: "late", deadline: Date().addingTimeInterval(0.5))
        )
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            let run = try await self.waitForEnd(db, "late")
            #expect(run.status == .failed)
            #expect(run.errorCode == "DEADLINE_EXCEEDED")
        }
    }

    @Test("a failing step is retried in the worker, and one that keeps failing throws STEP_FAILED to the workflow")
    func stepRetries() async throws {
        let db = try TestDatabase.get()
        let counter = StepCounter()
        var registry = JobRegistry()
        registry.register(workflow: Retrying(counter: counter))
        try await db.client.workflows.start(Retrying.self, input: 1, options: .init(id: "retry"))
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "retry")
            #expect(try run.output(as: String.self) == "ok, doomed: STEP_FAILED")
            #expect(run.steps.map(\.attempts) == [3, 2])
            #expect(run.steps.map(\.status) == [.completed, .failed])
            #expect(run.steps.last?.errorMessage?.contains("never") == true)
        }
        #expect(counter.count("retry", "flaky") == 3)
        #expect(counter.count("retry", "doomed") == 2)
    }

    @Test("a step attempt past its timeout fails with TIMEOUT, and the run with it")
    func stepTimeout() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: SlowStep())
        try await db.client.workflows.start(SlowStep.self, input: 1, options: .init(id: "slow"))
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "slow")
            #expect(run.status == .failed)
            #expect(run.errorCode == "TIMEOUT")
            #expect(run.steps.first?.errorCode == "TIMEOUT")
        }
    }

    @Test("an output over the cap, or with a NUL character, fails its step with a code and stores nothing of it")
    func outputCaps() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: BigOutput(), maximumOutputBytes: 100)
        try await db.client.workflows.start(
            BigOutput.self,
            input: String(repeating: "x", count: 200),
            options: .init(id: "big")
        )
        try await db.client.workflows.start(BigOutput.self, input: "nul", options: .init(id: "nul"))
        try await db.withWorker(registry) { _ in
            let big = try await self.waitForEnd(db, "big")
            #expect(big.errorCode == "OUTPUT_TOO_LARGE")
            #expect(big.steps.first?.outputJSON == nil)
            let nul = try await self.waitForEnd(db, "nul")
            #expect(nul.errorCode == "MALFORMED_ARGUMENTS")
        }
    }

    @Test("hostile starts are refused with codes before anything is stored")
    func hostileStartsAreRefused() async throws {
        let db = try TestDatabase.get()
        func code(_ body: () async throws -> Void) async -> String? {
            do {
                try await body()
                return nil
            } catch let error as ConveyorError {
                return error.code.rawValue
            } catch {
                return "\(error)"
            }
        }
        #expect(
            await code { try await db.client.workflows.start(Doubler.self, input: 1, options: .init(id: "bad\nid")) }
                == "INVALID_OPTION"
        )
        #expect(
            await code {
                try await db.client.workflows.start(Doubler.self, input: 1, options: .init(queue: "no space"))
            }
                == "INVALID_QUEUE_NAME"
        )
        #expect(
            await code { try await db.client.workflows.start(name: "test.doubler", inputJSON: "{oops") }
                == "MALFORMED_ARGUMENTS"
        )
        #expect(
            await code { try await db.client.workflows.start(BigOutput.self, input: "a\u{0}b") }
                == "MALFORMED_ARGUMENTS"
        )
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.workflow_runs") == 0)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)
    }

    @Test("a fork reuses the stored outputs before its step, runs the rest again, and records its origin")
    func forkReusesOutputs() async throws {
        let db = try TestDatabase.get()
        let counter = StepCounter()
        let broken = Mutex<Bool>.Box()
        var registry = JobRegistry()
        registry.register(workflow: Breakable(counter: counter, broken: broken))
        try await db.client.workflows.start(Breakable.self, input: 10, options: .init(id: "origin"))
        try await db.withWorker(registry) { _ in
            let failed = try await self.waitForEnd(db, "origin")
            #expect(failed.status == .failed)
            #expect(failed.errorCode == "STEP_FAILED")
            broken.set(false)
            let fork = try await db.client.workflows.fork("origin", fromStep: "c", newID: "fixed")
            #expect(fork.id == "fixed")
            let fixed = try await self.waitForEnd(db, "fixed")
            #expect(try fixed.output(as: Int.self) == 13)
            #expect(fixed.forkedFrom == "origin")
            #expect(fixed.forkedAtStep == "c")
            #expect(fixed.steps.map(\.name) == ["a", "b", "c"])
        }
        // a and b ran once, for the origin; the fork ran only c.
        #expect(counter.count("origin", "a") == 1)
        #expect(counter.count("fixed", "a") == 0)
        #expect(counter.count("fixed", "b") == 0)
        #expect(counter.count("fixed", "c") == 1)
        await expectCode(.stepNotFound) { try await db.client.workflows.fork("origin", fromStep: "zzz") }
    }

    @Test("patched takes the new branch for new runs and the old one for runs that stored steps beyond it")
    func patchBranches() async throws {
        let db = try TestDatabase.get()
        var old = JobRegistry()
        old.register(workflow: Patchable(patched: false))
        try await db.client.workflows.start(Patchable.self, input: 1, options: .init(id: "old-run"))
        try await db.withWorker(old) { _ in try await self.waitForStatus(db, "old-run", .waiting) }
        var new = JobRegistry()
        new.register(workflow: Patchable(patched: true))
        try await db.client.workflows.start(Patchable.self, input: 1, options: .init(id: "new-run"))
        try await db.client.workflows.signal("old-run", "go", 1)
        try await db.client.workflows.signal("new-run", "go", 2)
        try await db.withWorker(new) { _ in
            let oldRun = try await self.waitForEnd(db, "old-run")
            #expect(try oldRun.output(as: [String].self) == ["email", "go 1"], "\(oldRun.errorMessage ?? "")")
            let newRun = try await self.waitForEnd(db, "new-run")
            #expect(try newRun.output(as: [String].self) == ["email", "sms", "go 2"], "\(newRun.errorMessage ?? "")")
            #expect(newRun.steps.contains { $0.kind == .patch && $0.name == "sms" })
        }
    }

    @Test("cancelling a running run cancels the task of its running step, and the run ends cancelled")
    func cancelReachesRunningStep() async throws {
        let db = try TestDatabase.get()
        let saw = Gate()
        var registry = JobRegistry()
        registry.register(workflow: Endless(sawCancellation: saw))
        try await db.client.workflows.start(Endless.self, input: 1, options: .init(id: "endless"))
        try await db.withWorker(registry, configure: { $0.heartbeatInterval = .milliseconds(100) }) { _ in
            try await db.waitUntil("the step runs") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") == 1
            }
            let asked = try await db.client.workflows.cancel("endless")
            #expect(asked.cancelRequestedAt != nil)
            await saw.wait()
            let run = try await self.waitForEnd(db, "endless")
            #expect(run.status == .cancelled)
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'cancelled'") == 1)
    }

    @Test("a workflow signals another run once, through a step")
    func workflowSignalsRun() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: Signaller())
        registry.register(workflow: WaitsForever())
        try await db.client.workflows.start(WaitsForever.self, input: 1, options: .init(id: "receiver"))
        try await db.client.workflows.start(Signaller.self, input: "receiver", options: .init(id: "sender"))
        try await db.withWorker(registry) { _ in
            let receiver = try await self.waitForEnd(db, "receiver")
            #expect(try receiver.output(as: Int.self) == 5)
            let sender = try await self.waitForEnd(db, "sender")
            #expect(sender.steps.map(\.name) == ["signal:receiver/go"])
        }
    }

    @Test("a run asked to cancel whose worker shuts down before it sees the request still ends cancelled")
    func cancelSurvivesShutdown() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: Endless(sawCancellation: Gate()))
        try await db.client.workflows.start(Endless.self, input: 1, options: .init(id: "cancel-at-shutdown"))
        // No heartbeat within the test: the request is not seen while the first worker runs.
        try await db.withWorker(
            registry,
            configure: {
                $0.leaseDuration = .seconds(7200)
                $0.heartbeatInterval = .seconds(3600)
                $0.shutdownGracePeriod = .milliseconds(100)
            }
        ) { _ in
            try await db.waitUntil("the step runs") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") == 1
            }
            let asked = try await db.client.workflows.cancel("cancel-at-shutdown")
            #expect(asked.status == .running)
        }
        // The release at shutdown met the cancel request: the job went back to available (not cancelled behind
        // the run's back), and the next execution ends the run.
        #expect(try await db.client.workflows.get("cancel-at-shutdown")?.status.isFinished == false)
        try await db.withWorker(registry) { _ in
            let run = try await self.waitForEnd(db, "cancel-at-shutdown")
            #expect(run.status == .cancelled)
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'cancelled'") == 1)
    }

    @Test("a signal that arrives while the run executes, before it suspends, resumes it without a poll")
    func signalDuringExecutionResumesRun() async throws {
        let db = try TestDatabase.get()
        let running = Gate()
        let release = Gate()
        var registry = JobRegistry()
        registry.register(workflow: HeldThenSignal(running: running, release: release))
        try await db.client.workflows.start(HeldThenSignal.self, input: 1, options: .init(id: "held"))
        // A poll an hour away: only the suspension's own decision can make the run runnable again.
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            await running.wait()
            // The execution loaded the run before this signal existed; it finds it only at its suspension.
            try await db.client.workflows.signal("held", "go", 9)
            release.open()
            let run = try await self.waitForEnd(db, "held")
            #expect(try run.output(as: Int.self) == 9)
        }
    }
}
