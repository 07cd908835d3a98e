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

    @Test("a written result removes its own attempt, not a newer attempt of the same job fetched meanwhile")
    func resultRemovesOnlyItsAttempt() {
        let inFlight = InFlightJobs()
        func execution(token: Int64, queue: String = "q") -> InFlightJobs.Execution {
            InFlightJobs.Execution(
                job: FetchedJob(
                    id: JobID(1),
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
        let counter = Mutex(0)
        inFlight.onRemoval(queue: "q") { counter.withLock { $0 += 1 } }
        // The first attempt finished; before its result left the set, the retry was fetched.
        inFlight.insert([execution(token: 10)])
        inFlight.insert([execution(token: 11)])
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
}
