import Foundation

/// How one run of an instance ended; the worker acts on it. No result leaves an instance running
/// with nobody on it.
enum RunResult: Sendable {
    /// The workflow returned; its output is recorded and the lease ended with it.
    case completed(JSONPayload)
    /// The workflow failed (after its compensations); the error is recorded and the lease ended.
    case failed(ErrorRecord)
    /// The instance was cancelled (after its compensations); recorded, and the lease ended.
    case cancelled(ErrorRecord)
    /// The workflow continued as new: the next run starts at once with `input`, under `lease` — the
    /// same lease, its fencing token moved on so that nothing of the finished run can write into the next.
    case continuedAsNew(JSONPayload, lease: Lease)
    /// The instance waits until `until` (or a wake-up, when `nil`): the worker releases it, ready then.
    case waiting(until: Date?)
    /// The run stopped without an outcome; the worker decides what happens to the lease.
    case released(ReleaseReason)
    /// The lease was lost: another worker owns the instance now. Nothing more is written.
    case leaseLost
}

/// Why a run stopped without an outcome.
enum ReleaseReason: Sendable {
    /// The app is shutting down: the worker releases the lease, and the instance resumes on the
    /// next claim — in this process's next start, or on another worker.
    case shutdown
    /// A store read or write failed: the worker runs the instance again after a backoff.
    case storeFailure(any Error)
}

/// Thrown inside a run that waits for longer than it may stay in memory: the run ends, and the
/// instance is released, ready again at `until`.
struct RunWaiting: Error, CustomStringConvertible {
    let until: Date
    let instanceID: String

    var description: String { "Instance \(instanceID) waits until \(until); it is released and resumes then." }
}

/// Thrown inside a run that must stop at once: shutdown, a lost lease, or a context used after its run ended.
struct RunStopped: Error, CustomStringConvertible {
    enum Reason: Sendable, Equatable {
        case shutdown
        case leaseLost
        /// The run returned; a context that escaped it (in a stray `Task`) may not run steps.
        case ended
    }

    let reason: Reason
    let instanceID: String

    var description: String {
        switch reason {
        case .shutdown: "The app is shutting down; instance \(instanceID) resumes on the next claim."
        case .leaseLost: "The lease on instance \(instanceID) was lost; another worker runs it now."
        case .ended: "The run of instance \(instanceID) has ended; its context can no longer run steps."
        }
    }
}
