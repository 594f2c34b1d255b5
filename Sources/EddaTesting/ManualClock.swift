public import Edda
public import Foundation
import Synchronization

/// A clock that moves only when a test moves it, so retry schedules and budgets can be checked
/// without sleeping.
///
/// ```swift
/// let clock = ManualClock()
/// var configuration = EddaApp.Configuration.testing
/// configuration.clock = clock
/// configuration.defaultRetryPolicy = .default
/// // … start a workflow whose activity keeps failing, then:
/// let wait = try await clock.nextSleep()      // 1 second
/// clock.advance(by: wait)
/// ```
public final class ManualClock: WorkflowClock {
    /// `false`: a test moves it, so it is not compared with a database server's clock.
    public var isRealTime: Bool { false }

    private struct Sleeper {
        let id: UUID
        let deadline: Date
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [Sleeper] = []
        var sleepersWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state: Mutex<State>

    /// Creates a clock showing `now`. Defaults to 2023-11-14 22:13:20 UTC.
    public init(now: Date = Date(timeIntervalSince1970: 1_700_000_000)) {
        self.state = Mutex(State(now: now))
    }

    public func now() -> Date {
        state.withLock { $0.now }
    }

    public func sleep(until deadline: Date) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    // Cancelled before this sleeper registered: the cancel handler found nothing to wake.
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                        return []
                    }
                    if deadline <= state.now {
                        continuation.resume()
                        return []
                    }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    let count = state.sleepers.count
                    let ready = state.sleepersWaiters.filter { $0.count <= count }.map(\.continuation)
                    state.sleepersWaiters.removeAll { $0.count <= count }
                    return ready
                }
                ready.forEach { $0.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.addingTimeInterval(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        due.forEach { $0.continuation.resume() }
    }

    /// The deadlines tasks are sleeping until, earliest first.
    public var pendingDeadlines: [Date] {
        state.withLock { $0.sleepers.map(\.deadline).sorted() }
    }

    /// Waits until at least `count` tasks sleep on this clock.
    public func waitForSleepers(count: Int = 1) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.count >= count { return true }
                state.sleepersWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Waits for the next sleeper and returns how long it asked to sleep from now.
    public func nextSleep() async -> Duration {
        while true {
            await waitForSleepers(count: 1)
            // A sleeper may have been cancelled meanwhile: then wait for the next.
            let next = state.withLock { state in state.sleepers.map(\.deadline).min().map { (state.now, $0) } }
            guard let (now, deadline) = next else { continue }
            let milliseconds = (deadline.timeIntervalSince(now) * 1000).rounded()
            return .milliseconds(Int64(milliseconds))
        }
    }
}
