import ConveyorCore
import Foundation
import Logging

extension WorkerRuntime {
    /// Runs one execution of a workflow run: loads the run with its stored steps, runs the workflow from the top
    /// (stored steps return at once), and writes how the execution ended (the run ended, or it suspended) with the
    /// job's result in one transaction.
    func executeWorkflow(_ execution: InFlightJobs.Execution) async {
        let job = execution.job
        let lease = execution.lease
        let clock = ContinuousClock()
        let start = clock.now
        withUnsafeCurrentTask { task in execution.begin(deadline: nil, task: task) }
        guard let runID = WorkflowJob.runID(fromArguments: job.argumentsJSON) else {
            _ = execution.markFinished()
            self.finish(
                job,
                result: .malformedArguments(message: "a workflow job's arguments must be {\"run\": id}"),
                entry: nil,
                elapsed: .zero
            )
            return
        }
        let run: WorkflowExecutionState?
        do {
            run = try await self.workflowLoader.load(runID)
        } catch {
            // Transient or not, the run is as it was: give the job back, and let it be fetched again.
            _ = execution.markFinished()
            self.logger.warning(
                "loading a workflow run failed; releasing it",
                metadata: ["workflow_run_id": "\(runID)", "error": "\(error)"]
            )
            self.release(job)
            return
        }
        guard let run else {
            _ = execution.markFinished()
            self.finish(
                job,
                result: .malformedArguments(message: "workflow run \(runID) does not exist"),
                entry: nil,
                elapsed: .zero
            )
            return
        }
        func end(_ status: WorkflowRunStatus, output: String? = nil, code: String? = nil, message: String? = nil) {
            var unit = WorkflowUnitOfWork()
            unit.endings.append(
                WorkflowRunEnding(
                    lease: lease,
                    runID: runID,
                    status: status,
                    outputJSON: output,
                    errorCode: code,
                    errorMessage: message.map { ErrorText.sanitized($0) },
                    durationMicroseconds: (clock.now - start).wholeNanoseconds / 1000
                )
            )
            self.submitFinal(unit, lease: lease, runID: runID)
        }
        if run.status.isFinished {
            _ = execution.markFinished()
            end(run.status)
            return
        }
        if run.cancelRequested {
            _ = execution.markFinished()
            end(.cancelled, code: "CANCELLED", message: "cancelled by a client")
            return
        }
        if run.deadlinePassed {
            _ = execution.markFinished()
            end(.failed, code: ConveyorError.Code.deadlineExceeded.rawValue, message: "the run's deadline passed")
            return
        }
        guard let entry = self.registry.workflow(named: run.name, version: run.version) else {
            // Visible as waiting for its version; a worker that has it wakes it when it starts.
            _ = execution.markFinished()
            var unit = WorkflowUnitOfWork()
            unit.suspensions.append(
                WorkflowSuspension(
                    lease: lease,
                    runID: runID,
                    durationMicroseconds: 0,
                    waitsForVersion: true
                )
            )
            self.logger.warning(
                "no workflow of this name and version is registered; the run waits for a worker that has it",
                metadata: ["workflow_run_id": "\(runID)", "workflow": "\(run.name)", "version": "\(run.version)"]
            )
            self.submitFinal(unit, lease: lease, runID: runID)
            return
        }
        let state = WorkflowExecution(
            lease: lease,
            run: run,
            queue: job.queue,
            writer: self.workflowWriter,
            maximumOutputBytes: entry.maximumOutputBytes
        )
        let context = WorkflowContext(execution: state, run: run, logger: self.logger)
        var output: String?
        var thrown: (any Error)?
        do {
            output = try await withTaskCancellationHandler {
                try await entry.run(run.inputJSON, context)
            } onCancel: {
                execution.cancelledFromOutside()
            }
        } catch {
            thrown = error
        }
        let stopReason = execution.markFinished()
        switch stopReason {
        case .cancelRequested:
            end(.cancelled, code: "CANCELLED", message: "cancelled by a client while running")
            return
        case .shutdown, .leaseLost, .timeout:
            // Stored steps stay; the run resumes from them on the worker that fetches it next.
            var unit = WorkflowUnitOfWork()
            unit.completions.append(
                JobCompletion(
                    lease: lease,
                    transition: JobTransition.after(
                        .released,
                        attempt: job.attempt,
                        maxAttempts: job.maxAttempts,
                        retryPolicy: .default,
                        unitRandom: 0
                    ),
                    durationMicroseconds: (clock.now - start).wholeNanoseconds / 1000
                )
            )
            self.submitFinal(unit, lease: lease, runID: runID)
            return
        case nil:
            break
        }
        if thrown is WorkflowLeaseLost {
            // Another worker holds the run now: nothing more may be written under this lease.
            self.inFlight.remove([lease])
            return
        }
        if state.replay.isSuspending || thrown is WorkflowSuspended {
            var unit = WorkflowUnitOfWork()
            unit.steps = state.takeWaits()
            unit.suspensions.append(
                WorkflowSuspension(
                    lease: lease,
                    runID: runID,
                    durationMicroseconds: (clock.now - start).wholeNanoseconds / 1000
                )
            )
            self.submitFinal(unit, lease: lease, runID: runID)
            return
        }
        switch thrown {
        case nil:
            end(.completed, output: output)
        case let failure as WorkflowStepFailure:
            end(.failed, code: failure.code, message: failure.description)
        case let error as ConveyorError:
            end(.failed, code: error.code.rawValue, message: error.message)
        case let error?:
            end(.failed, code: "WORKFLOW_FAILED", message: String(describing: error))
        }
    }

    /// Writes how an execution ended; the lease leaves the in-flight set once it is written (or refused).
    private func submitFinal(_ unit: WorkflowUnitOfWork, lease: JobLease, runID: WorkflowRunID) {
        let submitted = ContinuousClock.now
        self.workflowWriter.submit(unit) { [inFlight, stager, logger] result in
            if case .failure(let error) = result, !(error is WorkflowLeaseLost), !(error is CancellationError) {
                logger.error(
                    "the end of a workflow execution could not be written; the lease is left to expire",
                    metadata: ["workflow_run_id": "\(runID)", "error": "\(error)"]
                )
            }
            inFlight.remove([lease])
            // A suspended run's job is staged when its timer is due, on this worker, without waiting for a poll.
            if case .success(let written) = result, let wakeAfter = written.wakeAfter[runID] {
                stager.expect(submitted + wakeAfter)
            }
        }
    }
}
