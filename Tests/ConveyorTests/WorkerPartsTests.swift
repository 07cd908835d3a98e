import Synchronization
import Testing

@testable import Conveyor

@Suite struct WorkerPartsTests {
    @Test("a buffer refilled before it runs empty keeps its order and does not grow with what passed through it")
    func refilledBufferStaysSmall() {
        var buffer = FetchedBuffer<Int>()
        var next = 0
        var expected = 0
        var largest = 0
        // A busy worker: each fetch tops the buffer up to 40 while the lanes take 25 between fetches.
        for _ in 0..<10_000 {
            let refill = 40 - buffer.count
            buffer.append(contentsOf: next..<next + refill)
            next += refill
            for _ in 0..<25 {
                #expect(buffer.takeFirst() == expected)
                expected += 1
            }
            largest = max(largest, buffer.storageCount)
        }
        #expect(expected == 250_000)
        #expect(largest <= 2 * 40 + 32)
        while let value = buffer.takeFirst() {
            #expect(value == expected)
            expected += 1
        }
        #expect(buffer.count == 0 && expected == next)
    }

    static func execution(job: Int64 = 1, token: Int64, queue: String = "q") -> InFlightJobs.Execution {
        InFlightJobs.Execution(
            job: FetchedJob(
                id: JobID(job),
                kind: "k",
                queue: queue,
                namespace: "default",
                argumentsJSON: "{}",
                attempt: Int(token),
                maxAttempts: 5,
                leaseToken: token,
                timeoutMilliseconds: nil,
                tags: []
            )
        )
    }

    @Test("a written result removes its own attempt, not a newer attempt of the same job fetched meanwhile")
    func resultRemovesOnlyItsAttempt() {
        let inFlight = InFlightJobs()
        let execution = { (token: Int64) in Self.execution(token: token) }
        let counter = Mutex(0)
        inFlight.onRemoval(queue: "q") { counter.withLock { $0 += 1 } }
        // The first attempt finished; before its result left the set, the retry was fetched.
        inFlight.insert([execution(10)])
        inFlight.insert([execution(11)])
        #expect(inFlight.held(queue: "q") == 1)
        inFlight.remove([JobLease(id: JobID(1), token: 10)])
        #expect(inFlight.execution(holding: JobLease(id: JobID(1), token: 11)) != nil)
        #expect(inFlight.execution(holding: JobLease(id: JobID(1), token: 10)) == nil)
        #expect(inFlight.held(queue: "q") == 1)
        #expect(counter.withLock { $0 } == 0)
        inFlight.remove([JobLease(id: JobID(1), token: 11)])
        #expect(inFlight.execution(holding: JobLease(id: JobID(1), token: 11)) == nil)
        #expect(inFlight.held(queue: "q") == 0)
        #expect(counter.withLock { $0 } == 1)
    }

    @Test("a heartbeat's answer stops a handler only under the lease it was about, and never a finished one", .database)
    func heartbeatAnswersGoByLease() throws {
        let db = try TestDatabase.get()
        let runtime = WorkerRuntime(store: db.store, registry: JobRegistry(), configuration: .init(), logger: db.logger)
        // Job 1 was fetched again under token 11 after its lease under token 10 was lost; job 2's handler finished
        // and its result waits for the completer.
        let current = Self.execution(job: 1, token: 11)
        let finished = Self.execution(job: 2, token: 20)
        _ = finished.markFinished()
        runtime.inFlight.insert([current, finished])
        let stale = runtime.apply(
            HeartbeatResult(cancelRequested: [JobID(1)], lost: [JobID(1), JobID(2)]),
            sent: [JobID(1): JobLease(id: JobID(1), token: 10), JobID(2): JobLease(id: JobID(2), token: 20)]
        )
        #expect(stale.isEmpty)
        let answer = runtime.apply(
            HeartbeatResult(cancelRequested: [], lost: [JobID(1)]),
            sent: [JobID(1): JobLease(id: JobID(1), token: 11)]
        )
        #expect(answer.map(\.lease) == [JobLease(id: JobID(1), token: 11)])
        #expect(current.markFinished() == .leaseLost)
    }
}
