import Synchronization

/// An activity attempt's limits: ``Activity/timeout`` and ``Activity/heartbeatTimeout``.
struct AttemptLimits: Sendable {
    var timeout: Duration?
    var heartbeatTimeout: Duration?

    init(timeout: Duration? = nil, heartbeatTimeout: Duration? = nil) {
        self.timeout = timeout
        self.heartbeatTimeout = heartbeatTimeout
    }

    /// Whether there is no limit at all: the body then runs in place.
    var isEmpty: Bool { timeout == nil && heartbeatTimeout == nil }

    /// Runs `body` in a task of its own and returns its result, unless an attempt limit passes first:
    /// then throws `expired(limit, duration)` at once and cancels the body, leaving it behind (see
    /// ``AbandonableTask``). Without limits, runs `body` in place.
    func run<T: Sendable>(
        heartbeat: Heartbeat?, expired: @escaping @Sendable (ActivityTimeoutError.Limit, Duration) -> any Error,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard timeout != nil || heartbeatTimeout != nil else { return try await body() }
        let (timeout, heartbeatTimeout) = (self.timeout, self.heartbeatTimeout)
        let started = ContinuousClock.now
        let work = AbandonableTask(body)
        // One timer per attempt, asleep until the nearer limit; a heartbeat meanwhile moves that limit on.
        let watch = Task {
            while true {
                let byTimeout = timeout.map { started + $0 }
                let byHeartbeat = heartbeatTimeout.map { (heartbeat?.lastBeat ?? started) + $0 }
                guard let due = [byTimeout, byHeartbeat].compactMap(\.self).min() else { return }
                do {
                    try await Task.sleep(until: due, clock: .continuous)
                } catch {
                    return
                }
                let now = ContinuousClock.now
                if let byTimeout, let timeout, now >= byTimeout {
                    work.abandon(with: expired(.timeout, timeout))
                    return
                }
                if let heartbeatTimeout, now >= (heartbeat?.lastBeat ?? started) + heartbeatTimeout {
                    work.abandon(with: expired(.heartbeat, heartbeatTimeout))
                    return
                }
            }
        }
        defer { watch.cancel() }
        return try await work.value
    }
}

/// When an activity attempt last called ``ActivityContext/heartbeat()``: what its
/// ``Activity/heartbeatTimeout`` counts from. Made only for an activity that has one.
final class Heartbeat: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    /// When the current attempt last reported, if it has.
    var lastBeat: ContinuousClock.Instant? { last.withLock { $0 } }

    func beat() {
        last.withLock { $0 = .now }
    }

    /// A new attempt starts: its heartbeat timeout counts from its start again.
    func startAttempt() {
        last.withLock { $0 = nil }
    }
}
