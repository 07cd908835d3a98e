import Conveyor
import Synchronization

struct Echo: JobArguments {
    static let kind = "test.echo"
    var value: Int
}

struct Flaky: JobArguments {
    static let kind = "test.flaky"
    /// Attempts that fail before one succeeds.
    var failures: Int
}

/// Collects what handlers saw, for assertions.
final class Recorder: Sendable {
    private let values = Mutex<[Int]>([])

    func append(_ value: Int) { self.values.withLock { $0.append(value) } }

    var all: [Int] { self.values.withLock { $0 } }
}
