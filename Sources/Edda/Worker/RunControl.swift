import Foundation
import Synchronization

/// Stops one run from outside it: the worker's shutdown, or the lease renewer finding the lease lost.
///
/// Stopping does not cancel an activity body that is running: the step still records its outcome
/// (on shutdown) or has its record refused by the fence (lease lost). What stops is what comes
/// next — no new step or attempt starts — and any retry backoff the run is sleeping through.
final class RunControl: Sendable {
    enum StopReason: UInt8, Sendable, Equatable {
        case shutdown = 1
        case leaseLost
        /// The run returned; a context that escaped it (in a stray `Task`) may not run steps.
        case ended
    }

    /// The stop reason's raw value, 0 while running: read before every step, so lock-free.
    private let reason = Atomic<UInt8>(0)
    private let cancelled = Atomic(false)

    private struct State {
        var sleepers: [Int: (continuation: CheckedContinuation<Void, Never>, cancellable: Bool)] = [:]
        var nextSleeper = 0
        /// Sleepers cancelled before they registered.
        var cancelled: Set<Int> = []
    }

    private let state = Mutex(State())

    init() {}

    /// Why the run must stop, once it must.
    var stopReason: StopReason? {
        StopReason(rawValue: reason.load(ordering: .acquiring))
    }

    /// Whether the instance was cancelled: its next fresh step (or wait) throws
    /// ``WorkflowCancelledError``, and the run goes on to compensate and record the cancellation.
    var cancellationRequested: Bool {
        cancelled.load(ordering: .acquiring)
    }

    /// Cancels the instance at its next step boundary; a wait in progress ends at once.
    func requestCancellation() {
        guard cancelled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        // Only waits a cancellation ends: a compensation's backoff sleeps on.
        let sleepers = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let woken = state.sleepers.filter(\.value.cancellable)
            for id in woken.keys { state.sleepers[id] = nil }
            return woken.values.map(\.continuation)
        }
        for sleeper in sleepers { sleeper.resume() }
    }

    /// Stops the run (the first reason sticks) and wakes its backoff sleep.
    func stop(_ reason: StopReason) {
        let sleepers = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            _ = self.reason.compareExchange(expected: 0, desired: reason.rawValue, ordering: .acquiringAndReleasing)
            defer { state.sleepers = [:] }
            return state.sleepers.values.map(\.continuation)
        }
        for sleeper in sleepers { sleeper.resume() }
    }

    /// Sleeps until `deadline` on `clock`, or throws ``RunStopped`` as soon as the run is stopped.
    func sleep(until deadline: Date, clock: any WorkflowClock, instanceID: String, cancellable: Bool = true) async throws {
        if let reason = stopReason { throw RunStopped(reason: reason, instanceID: instanceID) }
        if cancellable, cancellationRequested { throw WorkflowCancelledError(instanceID: instanceID) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await clock.sleep(until: deadline) }
            group.addTask {
                await self.waitForStop(cancellable: cancellable)
                if let reason = self.stopReason { throw RunStopped(reason: reason, instanceID: instanceID) }
                if cancellable, self.cancellationRequested { throw WorkflowCancelledError(instanceID: instanceID) }
                // Not stopped: the task was cancelled.
                throw CancellationError()
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Returns once the run is stopped, or the task is cancelled.
    private func waitForStop(cancellable: Bool) async {
        let id = state.withLock { state -> Int in
            state.nextSleeper += 1
            return state.nextSleeper
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    // Stopped already, or cancelled before registering (the marker below).
                    if self.stopReason != nil || (cancellable && self.cancellationRequested) || state.cancelled.remove(id) != nil {
                        return true
                    }
                    state.sleepers[id] = (continuation, cancellable)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if let sleeper = state.sleepers.removeValue(forKey: id) { return sleeper.continuation }
                // Not registered yet: leave a marker so registration resumes at once.
                state.cancelled.insert(id)
                return nil
            }
            continuation?.resume()
        }
    }
}
