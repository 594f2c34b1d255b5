public import Edda

extension OutboxRelay {
    /// How a relay delivers: where, in which CloudEvents mode, how often it retries.
    public struct Configuration: Sendable {
        /// The URL each event is POSTed to.
        public var endpoint: String
        /// CloudEvents HTTP binary mode (attributes in `ce-` headers, data as the body) or
        /// structured mode (one `application/cloudevents+json` document).
        public var mode: Mode
        /// Extra headers on every request, such as `Authorization`.
        public var headers: [(name: String, value: String)]
        /// Backoff between failed deliveries of one event, and when to give up
        /// (``OutboxStatus/failed``). Defaults to 10 attempts, 1 s doubling to at most 5 min.
        public var retry: RetryPolicy
        /// How many events one pass claims and sends concurrently.
        public var batchSize: Int
        /// How long the relay sleeps when nothing is due. A commit that enqueues events in this
        /// process wakes it at once, so this only bounds the delay for retries and other processes.
        public var pollInterval: Duration
        /// How long one POST may take.
        public var requestTimeout: Duration
        /// A claim older than this belongs to a relay that died mid-delivery: its events are
        /// delivered again. Keep it well above ``requestTimeout``.
        public var claimTimeout: Duration
        /// Events still undelivered this long after they were committed become
        /// ``OutboxStatus/expired``; `nil` (the default) never expires them.
        public var maxAge: Duration?

        public enum Mode: Sendable, Hashable {
            case binary
            case structured
        }

        public init(
            endpoint: String,
            mode: Mode = .binary,
            headers: [(name: String, value: String)] = [],
            retry: RetryPolicy = RetryPolicy(
                maxAttempts: 10, initialInterval: .seconds(1), backoffCoefficient: 2, maxInterval: .seconds(300), maxDuration: nil
            ),
            batchSize: Int = 16,
            pollInterval: Duration = .seconds(1),
            requestTimeout: Duration = .seconds(10),
            claimTimeout: Duration = .seconds(60),
            maxAge: Duration? = nil
        ) {
            self.endpoint = endpoint
            self.mode = mode
            self.headers = headers
            self.retry = retry
            self.batchSize = batchSize
            self.pollInterval = pollInterval
            self.requestTimeout = requestTimeout
            self.claimTimeout = claimTimeout
            self.maxAge = maxAge
        }
    }
}
