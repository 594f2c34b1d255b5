import CoreMetrics
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The entry point: a registry of workflows, a client to start and follow instances, and a worker
/// that runs them.
///
/// ```swift
/// let app = EddaApp(store: try SQLiteStore(path: "orders.sqlite"), serviceName: "order-service")
/// try app.register(processOrder)
///
/// try await app.run { app in
///     let handle = try await app.start(processOrder, OrderInput(orderID: "ORD-1", amount: 20))
///     print(try await handle.result())
/// }
/// ```
///
/// `EddaApp` is a `Service`: in a server, put it in a `ServiceGroup` next to your HTTP server;
/// in a script or a test, ``run(_:)`` runs it for the duration of a closure. Running, it is a
/// worker: it claims the instances that are ready — left running by a previous process, say — and
/// runs each under a fenced lease, replaying it from its history (<doc:WorkersAndLeases>).
///
/// Starting, finding, cancelling, retrying and awaiting instances are the ``client``'s (an
/// ``EddaClient``), and the app offers them too: `app.start(…)` is `app.client.start(…)`. A process
/// that only hands work to workers elsewhere needs a client alone.
public final class EddaApp: Service, Sendable {
    /// Starts, finds, cancels and awaits instances; in a running app, leases what it starts to this app's worker.
    public let client: EddaClient
    private let phase = Mutex(Phase.idle)

    private enum Phase: Sendable {
        case idle
        /// `run()` was called.
        case running
        case stopped
    }

    /// The workflows this app runs, by name.
    public var registry: WorkflowRegistry { client.registry }
    /// The name of the service this app belongs to, stored with every instance it creates.
    public var serviceName: String { client.serviceName }
    /// The store.
    public var store: any Store { client.store }
    /// The configuration.
    public var configuration: Configuration { client.configuration }
    var logger: Logger { client.logger }
    var observer: Observer { client.observer }

    /// Creates an app.
    ///
    /// - Parameters:
    ///   - store: Where instances and history live: `SQLiteStore` for an embedded file.
    ///   - serviceName: Your service's name, stored with each instance (`"order-service"`).
    ///   - configuration: Retry defaults, clock, worker ID.
    ///   - logger: The logger for the app and the workflows it runs.
    public init(store: some Store, serviceName: String, configuration: Configuration = .init(), logger: Logger = Logger(label: "edda")) {
        var logger = logger
        logger[metadataKey: "edda.worker.id"] = "\(configuration.workerID)"
        self.client = EddaClient(
            store: store, serviceName: serviceName, configuration: configuration, registry: WorkflowRegistry(),
            observer: Observer(configuration: configuration), logger: logger
        )
    }

    /// Registers a workflow so the app's worker claims and resumes its instances.
    ///
    /// Register every workflow before ``run()``: a worker claims only instances of registered
    /// workflows, and reports the others (``unresumableWorkflows``, this service's only) without touching them.
    /// ``start(_:_:instanceID:timeout:runTimeout:)`` registers the workflow it starts. Registering the same workflow
    /// value again does nothing.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/workflowNameTaken`` when
    ///   another workflow is registered under the same name.
    public func register<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>) throws {
        try registry.register(workflow)
    }

    // MARK: - Running

    /// Runs the app's worker until graceful shutdown or cancellation: claims the instances that are
    /// ready — left running by a previous process, released, or created by an app that does not
    /// run — and runs every instance started here.
    ///
    /// At most ``Configuration-swift.struct/maxConcurrentInstances`` run at once. On graceful
    /// shutdown no new claim or step starts; running activities finish and record their outcome;
    /// retry backoffs end at once; every lease is released, so the instances resume on the next
    /// claim, here or on another worker.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/databaseInUse`` when
    ///   another process runs workers on the same SQLite file.
    public func run() async throws {
        phase.withLock { phase in
            guard case .idle = phase else {
                preconditionFailure("EddaApp.run() was called twice; an app runs once. Create a new EddaApp to run again.")
            }
            phase = .running
        }
        let worker = Worker(client: client, logger: logger)
        defer {
            phase.withLock { $0 = .stopped }
            client.attach(nil)
            client.outcomes.stop()
        }
        // Hooks are called from a task of their own, off the engine's path; what is queued when the
        // worker stops is still delivered before run() returns.
        let delivery = observer.hooks.map { hooks in
            let events = hooks.currentEvents()
            return Task { await hooks.deliver(events) }
        }
        do {
            try await runWithPruner(worker)
        } catch {
            observer.hooks?.finish()
            await delivery?.value
            throw error
        }
        observer.hooks?.finish()
        await delivery?.value
    }

    /// Runs `worker` with the retention pruner and the scheduler beside it; they stop when the worker does.
    private func runWithPruner(_ worker: Worker) async throws {
        let pruner = Pruner(
            store: store, policy: configuration.retention, clock: ContinuousClock(),
            metricsFactory: configuration.instrumentation ? (configuration.metricsFactory ?? MetricsSystem.factory) : nil, logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pruner.run() }
            group.addTask { [client] in await Scheduler(client: client).run() }
            defer { group.cancelAll() }
            try await worker.run()
        }
    }

    /// Runs the app while `body` runs, then shuts it down gracefully and returns `body`'s result.
    ///
    /// For scripts, demos and tests; a server puts the app in its `ServiceGroup` instead. A store that
    /// is itself a `Service` (`PostgresStore`) runs alongside. If the app fails to run (another
    /// process owns the SQLite file, say), `body` is cancelled and the app's error is thrown.
    /// Instances `body` started before that stay, ready: starting from a process that runs no worker
    /// is how work is handed to the one that does, which claims them at its next poll
    /// (``Configuration-swift.struct/pollInterval``, or at once on PostgreSQL through NOTIFY).
    public func run<Result: Sendable>(_ body: @escaping @Sendable (EddaApp) async throws -> Result) async throws -> Result {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // A store with a run loop of its own (PostgreSQL's connection pool) runs first and stops last.
        if let storeService = store as? any Service {
            services.append(.init(service: storeService))
        }
        services.append(.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
        return try await withThrowingTaskGroup(of: Result?.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                } catch {
                    throw AppRunFailure(error: error)
                }
                return nil
            }
            tasks.addTask {
                do {
                    let result = try await body(self)
                    await group.triggerGracefulShutdown()
                    return result
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
            }
            var result: Result?
            var bodyError: (any Error)?
            while let next = await tasks.nextResult() {
                switch next {
                case .success(let value):
                    if let value { result = value }
                case .failure(let failure as AppRunFailure):
                    // The app's own failure explains the body's (a waiter told "stopped", say): it wins.
                    tasks.cancelAll()
                    throw failure.error
                case .failure(let error):
                    tasks.cancelAll()
                    bodyError = bodyError ?? error
                }
            }
            if let bodyError { throw bodyError }
            guard let result else {
                throw EngineError(.stopped, "The app stopped before the body passed to run(_:) returned.")
            }
            return result
        }
    }

    /// The instances this app's worker runs now (or has reserved room for). For tests and diagnostics.
    package var instancesRunningHere: Set<String> {
        client.runningWorker?.inFlight ?? []
    }
}

/// Carries the app's own error out of ``EddaApp/run(_:)``'s task group, to tell it from the body's.
private struct AppRunFailure: Error {
    let error: any Error
}

extension EddaApp: CustomStringConvertible {
    public var description: String { "EddaApp(\(serviceName))" }
}
