import Conveyor
import Foundation

/// The job types `conveyor bench` measures with, run by `conveyor worker` like the demo types.
enum BenchJobs {
    /// Does nothing: the queue's own cost per job.
    struct Noop: JobArguments {
        static let kind = "bench.noop"
    }

    /// Appends `job_id start_ns` (monotonic clock, comparable across processes) to a file when the handler starts.
    struct Probe: JobArguments {
        static let kind = "bench.probe"
        var file: String
    }

    static func register(into registry: inout JobRegistry) {
        registry.register(Noop.self) { _, _ in }
        registry.register(Probe.self) { args, context in
            let start = DemoJobs.monotonicNanoseconds()
            try DemoJobs.append("\(context.id) \(start)\n", to: args.file)
        }
        registry.register(workflow: BenchThreeSteps())
    }
}
