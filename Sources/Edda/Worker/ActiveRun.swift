import Foundation
import Synchronization

/// One run in progress: its ``RunStateMachine`` behind a lock, shared by the run's context, its
/// step executors and the worker, and the waits in place that a stop or a cancellation ends.
///
/// The worker makes a new one for every run of an instance, so nothing of a run reaches the next.
/// Stopping does not cancel an activity body that is running: the step still records its outcome
/// (on shutdown) or has its record refused (lease lost). What stops is what comes next — no new step
/// or attempt starts — and any wait in place the run is sleeping through.
final class ActiveRun: Sendable {
    private struct State: Sendable {
        var machine: RunStateMachine
        var sleepers: [Int: (continuation: CheckedContinuation<Void, Never>, cancellable: Bool)] = [:]
        var nextSleeper = 0
        /// Sleepers cancelled before they registered.
        var cancelled: Set<Int> = []
        /// The latest heartbeat details of each step that sent some (``ActivityContext/heartbeat(_:)``).
        var heartbeatDetails: [String: JSONPayload] = [:]
    }

    private let state: Mutex<State>
    /// The instance's deadlines in this run, if it has any: the run cancels itself at the first.
    let deadlines: RunDeadlines?

    init(instanceID: String, leaseValidUntil: ContinuousClock.Instant?, deadlines: RunDeadlines? = nil) {
        self.state = Mutex(State(machine: RunStateMachine(instanceID: instanceID, leaseValidUntil: leaseValidUntil, deadline: deadlines?.next)))
        self.deadlines = deadlines
    }

    /// Reads or changes the run's state, under its lock.
    func withMachine<T>(_ body: (inout RunStateMachine) throws -> T) rethrows -> T {
        try state.withLock { try body(&$0.machine) }
    }

    /// Stops the run from outside (shutdown, a lost lease) and wakes the waits it is sleeping through.
    func stop(_ reason: RunStateMachine.Stop) {
        let sleepers = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.machine.stop(reason)
            guard state.machine.interruptsSleep(cancellable: false) else { return [] }
            defer { state.sleepers = [:] }
            return state.sleepers.values.map(\.continuation)
        }
        for sleeper in sleepers { sleeper.resume() }
    }

    /// Cancels the instance at its next step boundary; a cancellable wait in progress ends at once.
    /// `deadline`: the deadline that passed, recorded as the reason (`nil`: somebody asked).
    func requestCancellation(deadline: DeadlineExceeded? = nil) {
        let sleepers = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.machine.cancellationRequested else { return [] }
            state.machine.requestCancellation(deadline: deadline)
            // Only waits a cancellation ends: a compensation's backoff sleeps on.
            let woken = state.sleepers.filter(\.value.cancellable)
            for id in woken.keys { state.sleepers[id] = nil }
            return woken.values.map(\.continuation)
        }
        for sleeper in sleepers { sleeper.resume() }
    }

    /// Keeps `details` for the next attempt of step `stepID` in this run.
    func recordHeartbeatDetails(_ details: JSONPayload, stepID: String) {
        state.withLock { $0.heartbeatDetails[stepID] = details }
    }

    /// The latest heartbeat details step `stepID` sent in this run.
    func heartbeatDetails(stepID: String) -> JSONPayload? {
        state.withLock { $0.heartbeatDetails[stepID] }
    }

    /// The run is over; wakes any wait of a task that escaped it.
    func end() {
        let sleepers = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.machine.end()
            defer { state.sleepers = [:] }
            return state.sleepers.values.map(\.continuation)
        }
        for sleeper in sleepers { sleeper.resume() }
    }

    /// Cancels the run at its next deadline (at once if it has passed), unless the task is cancelled
    /// first: a timer in this process, so that a run notices its deadline without asking the store.
    func watchDeadline() async {
        guard let next = deadlines?.next else { return }
        do {
            try await Task.sleep(until: next.at, clock: .continuous)
        } catch {
            return
        }
        requestCancellation(deadline: next.exceeded)
    }

    /// Cancels the run now if its deadline has passed (claimed late, or after a crash): before its
    /// first step, not whenever the timer's task first runs.
    func checkDeadline() {
        guard let next = deadlines?.next, next.at <= .now else { return }
        requestCancellation(deadline: next.exceeded)
    }

    /// Sleeps until `deadline` on `clock`, or throws as soon as the run must stop (``RunStopped``) or,
    /// when `cancellable`, the instance is cancelled (``WorkflowCancelledError``).
    func sleep(until deadline: Date, clock: any WorkflowClock, cancellable: Bool = true) async throws {
        try await sleep(cancellable: cancellable) { try await clock.sleep(until: deadline) }
    }

    /// Waits `duration` of real, monotonic time — an I/O backoff, which no workflow clock should
    /// stretch or skip — or throws as soon as the run must stop.
    func pause(for duration: Duration) async throws {
        try await sleep(cancellable: false) { try await Task.sleep(for: duration) }
    }

    private func sleep(cancellable: Bool, _ wait: @escaping @Sendable () async throws -> Void) async throws {
        try withMachine { try $0.beforeSleep(cancellable: cancellable) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await wait() }
            group.addTask {
                await self.waitForStop(cancellable: cancellable)
                try self.withMachine { try $0.beforeSleep(cancellable: cancellable) }
                // Not stopped: the task was cancelled.
                throw CancellationError()
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Returns once the run must stop (or is cancelled, for a cancellable wait), or the task is cancelled.
    private func waitForStop(cancellable: Bool) async {
        let id = state.withLock { state -> Int in
            state.nextSleeper += 1
            return state.nextSleeper
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    // Stopped already, or cancelled before registering (the marker below).
                    if state.machine.interruptsSleep(cancellable: cancellable) || state.cancelled.remove(id) != nil {
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
