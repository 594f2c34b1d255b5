/// How often, and how patiently, a failing activity is tried again.
///
/// The delay before attempt *n + 1* is `initialInterval × backoffCoefficient^(n-1)`, capped at
/// `maxInterval`. Retrying stops when `maxAttempts` attempts have run, or when the next attempt
/// would start after `maxDuration` from the first. ``TerminalError`` is never retried.
///
/// ```swift
/// let charge = Activity("critical_payment_api", retry: RetryPolicy(
///     maxAttempts: 10, initialInterval: .milliseconds(500), backoffCoefficient: 1.5,
///     maxInterval: .seconds(30), maxDuration: .seconds(120)
/// )) { (ctx, amount: Double) in … }
/// ```
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included. At least 1. Defaults to 5.
    public var maxAttempts: Int
    /// Delay after the first failure. Defaults to 1 second.
    public var initialInterval: Duration
    /// Factor applied to the delay after each further failure. Defaults to 2.
    public var backoffCoefficient: Double
    /// Largest delay between two attempts. Defaults to 60 seconds.
    public var maxInterval: Duration
    /// Total time budget from the first attempt's start; `nil` for no limit. Defaults to 5 minutes.
    public var maxDuration: Duration?

    public init(
        maxAttempts: Int = 5,
        initialInterval: Duration = .seconds(1),
        backoffCoefficient: Double = 2,
        maxInterval: Duration = .seconds(60),
        maxDuration: Duration? = .seconds(300)
    ) {
        precondition(maxAttempts >= 1, "RetryPolicy.maxAttempts must be at least 1; use RetryPolicy.noRetry for a single attempt")
        precondition(backoffCoefficient >= 1, "RetryPolicy.backoffCoefficient must be at least 1")
        self.maxAttempts = maxAttempts
        self.initialInterval = initialInterval
        self.backoffCoefficient = backoffCoefficient
        self.maxInterval = maxInterval
        self.maxDuration = maxDuration
    }

    /// 5 attempts, waiting 1, 2, 4 and 8 seconds between them.
    public static let `default` = RetryPolicy()

    /// One attempt, no retry.
    ///
    /// Named `noRetry` rather than `none` because `retry: .none` on an optional parameter would
    /// silently mean `nil` — the app's default policy.
    public static let noRetry = RetryPolicy(maxAttempts: 1)

    /// The wait after failed attempt number `attempt` (1-based) before the next one.
    ///
    /// Computed in floating point and capped at ``maxInterval`` before it becomes a `Duration`, so a
    /// step on its thousandth attempt (attempts are durable) gets `maxInterval`, not an overflow.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let cap = maxInterval.seconds
        let initial = initialInterval.seconds
        guard initial > 0 else { return min(initialInterval, maxInterval) }
        let seconds = initial * pow(backoffCoefficient, max(attempt - 1, 0), upTo: cap / initial)
        return seconds >= cap ? maxInterval : .seconds(seconds)
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    package var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }

    /// The duration in whole milliseconds.
    package var milliseconds: Int64 {
        let (s, attoseconds) = components
        return s * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// `base` to the power `exponent`, stopping early once it passes `limit` (the result is capped anyway).
private func pow(_ base: Double, _ exponent: Int, upTo limit: Double) -> Double {
    var result = 1.0
    var remaining = exponent
    while remaining > 0 && result <= limit {
        result *= base
        remaining -= 1
    }
    return result
}
