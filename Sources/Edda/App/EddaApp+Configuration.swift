import Foundation

extension EddaApp {
    /// Settings of an app, fixed once it runs.
    ///
    /// ```swift
    /// var configuration = EddaApp.Configuration()
    /// configuration.defaultRetryPolicy = RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(200))
    /// let app = EddaApp(store: store, serviceName: "orders", configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// The retry policy of activities that do not set one. Defaults to ``RetryPolicy/default``
        /// (5 attempts, waits of 1, 2, 4 and 8 seconds).
        public var defaultRetryPolicy: RetryPolicy = .default

        /// The clock retries wait on and budgets are measured with. Tests pass `ManualClock` (from
        /// `EddaTesting`) to skip time. Defaults to ``SystemClock``.
        public var clock: any WorkflowClock = SystemClock()

        /// This worker's identity, recorded as the owner of the instances it runs.
        /// Defaults to `host:pid:random`.
        public var workerID: String = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):"
            + UUID().uuidString.prefix(8).lowercased()

        public init() {}
    }
}
