/// An activity attempt ran past one of its limits — its ``Activity/timeout`` (start to close) or its
/// ``Activity/heartbeatTimeout`` (no ``ActivityContext/heartbeat()`` for that long) — and was given up.
///
/// It fails the attempt like an error the body threw: the activity's ``RetryPolicy`` decides whether
/// another attempt runs, and when none is left the workflow receives ``RetryExhaustedError`` with
/// this as the last error. The given-up body is cancelled (Swift task cancellation); one that does
/// not check for cancellation runs on in the background, and whatever it returns is discarded.
public struct ActivityTimeoutError: EddaError {
    /// Which limit passed.
    public enum Limit: String, Sendable, Hashable {
        /// The attempt's ``Activity/timeout``: from its start to its result.
        case timeout
        /// The ``Activity/heartbeatTimeout``: the body went that long without a heartbeat.
        case heartbeat
    }

    /// Which limit passed.
    public var limit: Limit
    /// How long that limit is.
    public var duration: Duration
    /// The activity's name.
    public var activityName: String
    /// The step ID of the call.
    public var stepID: String
    /// Which attempt was given up (1-based).
    public var attempt: Int

    public init(limit: Limit, duration: Duration, activityName: String, stepID: String, attempt: Int) {
        self.limit = limit
        self.duration = duration
        self.activityName = activityName
        self.stepID = stepID
        self.attempt = attempt
    }

    public var message: String {
        let what = switch limit {
        case .timeout: "did not finish within its timeout of \(DeadlineExceeded.text(of: duration))"
        case .heartbeat: "sent no heartbeat for \(DeadlineExceeded.text(of: duration)) (its heartbeatTimeout)"
        }
        return "Activity '\(activityName)' (\(stepID)) attempt \(attempt) \(what); the attempt failed and its body was cancelled. "
            + "Its retry policy decides whether it runs again. If the work needs longer, raise the limit"
            + (limit == .heartbeat ? ", or call ctx.heartbeat() more often." : ".")
    }

    public var cause: (any Error)? { nil }
}
