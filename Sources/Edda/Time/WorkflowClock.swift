public import Foundation

/// The time source the engine reads and waits on: retry backoff, retry budgets, and later timers.
///
/// It gives wall-clock time because deadlines are stored in history and must mean the same thing
/// to the next process after a crash. Tests pass a manual clock (`ManualClock` in `EddaTesting`)
/// to skip time instead of sleeping.
public protocol WorkflowClock: Sendable {
    /// The current time.
    func now() -> Date
    /// Suspends until `deadline` has passed, or throws `CancellationError` when the task is cancelled.
    func sleep(until deadline: Date) async throws
    /// Whether ``now()`` is meant to be this machine's real time, which a worker compares with a
    /// shared database server's (``EddaApp/Configuration-swift.struct/maxClockSkew``). `true` by
    /// default; a manual clock, meant to differ, says `false`.
    var isRealTime: Bool { get }
}

extension WorkflowClock {
    public var isRealTime: Bool { true }
}

/// The real clock: `Date()` for now, `Task.sleep` for waiting.
public struct SystemClock: WorkflowClock {
    public init() {}

    public func now() -> Date { Date() }

    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 {
            try await Task.sleep(for: .seconds(seconds))
        } else {
            try Task.checkCancellation()
        }
    }
}

extension WorkflowClock where Self == SystemClock {
    /// The real clock.
    public static var system: SystemClock { SystemClock() }
}

extension Date {
    func adding(_ duration: Duration) -> Date {
        addingTimeInterval(duration.seconds)
    }

    func duration(since start: Date) -> Duration {
        .seconds(timeIntervalSince(start))
    }
}
