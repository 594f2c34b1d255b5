public import CoreMetrics
import Foundation
public import Tracing

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

        /// At most this many instances run at once in this app's worker; it claims more as runs end.
        /// Defaults to 100.
        public var maxConcurrentInstances: Int = 100

        /// How long a lease on an instance lasts unless renewed. A worker that stops renewing (it
        /// crashed, or hangs) loses its instances to other workers this long after its last renewal.
        /// SQLite leases never lapse (the file's process lock does that job). Defaults to 15 seconds.
        public var leaseDuration: Duration = .seconds(15)

        /// How often the worker renews the leases it holds, all in one round trip. Keep it well under
        /// ``leaseDuration``. Defaults to 5 seconds.
        public var leaseRenewalInterval: Duration = .seconds(5)

        /// The longest wait a run spends in memory. A durable timer (``WorkflowContext/sleep(for:timerID:)``)
        /// due sooner keeps its run and lease and sleeps in place; one due later ends the run: the
        /// instance is released, holds no lease, task or memory, and is claimed again (and replayed)
        /// when the deadline comes. Defaults to 2 seconds.
        public var maxInMemoryWait: Duration = .seconds(2)

        /// How often the worker looks for ready instances the store could not tell it about (created
        /// by another process on a SQLite file, say). Defaults to 1 second.
        public var pollInterval: Duration = .seconds(1)

        /// How far this worker's clock (``clock``) may differ from the database server's before the
        /// worker warns, when it starts and every minute (PostgreSQL; a SQLite file has one machine).
        /// Durable timers and retry backoffs are set and claimed on workers' clocks: a worker whose
        /// clock runs ahead fires them early, one behind fires them late, by that much. Keep the
        /// machines' clocks in sync (NTP). Defaults to 1 second.
        public var maxClockSkew: Duration = .seconds(1)

        /// How often `result()` reads the store, at most, for an instance that runs in another
        /// process: it starts at 10 ms and doubles up to this. Defaults to 1 second.
        public var resultPollInterval: Duration = .seconds(1)

        /// The backoff before a run that a store failure stopped (a failed write, a dropped
        /// connection) runs again, holding its lease meanwhile. Retried without limit: the instance is
        /// never left with nobody on it. Defaults to 100 ms, doubling, at most 30 seconds apart.
        public var storeRetryPolicy = RetryPolicy(
            maxAttempts: .max, initialInterval: .milliseconds(100), backoffCoefficient: 2, maxInterval: .seconds(30), maxDuration: nil
        )

        /// Whether the app reports metrics, spans and hooks (their names are in the README's
        /// Observability section). Defaults to `true`; with no backend bootstrapped, the metrics cost
        /// a no-op call and no span is started. `false` is the benchmarks' baseline.
        public var instrumentation = true

        /// Where metrics go. `nil` (the default) uses `MetricsSystem.factory`, which the application
        /// bootstraps (swift-prometheus, swift-otel…); tests pass MetricsTestKit's `TestMetrics`.
        public var metricsFactory: (any MetricsFactory)?

        /// Where spans go. `nil` (the default) uses `InstrumentationSystem.tracer`, which the
        /// application bootstraps; tests pass an `InMemoryTracer`.
        public var tracer: (any Tracer)?

        /// Called, off the commit path, as workflows and activities start, finish, fail and retry.
        public var hooks: [any EddaHooks] = []

        /// How many hook events may wait for slow hooks; past it, the oldest are dropped. Defaults to 10,000.
        public var hookBufferSize = 10_000

        /// What the app's pruner deletes, and how often it runs (see ``RetentionPolicy``). Defaults
        /// to keeping finished instances forever and deleting published outbox events after 7 days.
        public var retention = RetentionPolicy()

        /// The version of the code this app runs, recorded on each instance it starts
        /// (``WorkflowInstance/applicationVersion``), so that a deployment of new code does not replay
        /// instances started by old code. Set it to something that changes when workflow code changes
        /// incompatibly: a release number, a build's commit.
        ///
        /// ```swift
        /// configuration.applicationVersion = "2026.12.1"
        /// configuration.compatibleVersions = ["2026.11.3"]  // its workflows are unchanged since
        /// ```
        ///
        /// When set, the app's worker claims only instances of this version, of ``compatibleVersions``,
        /// and unversioned ones (started before the app set a version: they were started under the
        /// promise that any worker runs them, and a SQLite file has one worker at a time, so none
        /// other could). Instances of other versions are left alone — neither run nor failed — for a
        /// worker of their version; `edda versions` counts them, so you know when an old version's
        /// workers can be retired. Child workflows and continue-as-new keep their instance's version,
        /// a retry keeps it, and a fork takes this app's (it runs today's code).
        ///
        /// Defaults to `nil`: unversioned. The app records no version, and its worker claims instances
        /// of every version, as an app did before versions existed.
        public var applicationVersion: String?

        /// Versions whose instances this app's worker also claims, besides its own
        /// ``applicationVersion``: those whose workflow code this version still runs correctly.
        /// Ignored while ``applicationVersion`` is `nil`. Defaults to none.
        public var compatibleVersions: Set<String> = []

        /// The versions a claim asks for: `nil` for an unversioned app (any version).
        var claimedVersions: Set<String>? {
            applicationVersion.map { compatibleVersions.union([$0]) }
        }

        public init() {}
    }
}
