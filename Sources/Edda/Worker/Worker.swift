import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs an app's instances: claims ready ones while it has room, runs each under its lease, renews
/// the leases it holds, and acts on how each run ends. ``EddaApp/run()`` runs one.
///
/// The decisions live in ``WorkerStateMachine``; this type does the I/O they call for.
final class Worker: Sendable {
    struct Job: Sendable {
        var instance: WorkflowInstance
        var lease: Lease
        /// A new instance has no history to read.
        var isNew: Bool
    }

    struct State: Sendable {
        var machine: WorkerStateMachine
        /// The leases held, each with the run using it (a new one for each run of the instance).
        var leases: LeaseBook<ActiveRun>
    }

    let store: any Store
    let configuration: EddaApp.Configuration
    let serviceName: String
    /// The workflows this worker runs.
    let registry: WorkflowRegistry
    /// Where a run's outcome goes for the `result()` calls waiting in this process.
    let outcomes: LocalOutcomes
    let observer: Observer
    /// The client of this worker's app: told when the worker is attached, so that it leases what it starts here.
    private let client: EddaClient
    let logger: Logger
    let environment: EngineEnvironment
    let state: Mutex<State>
    /// Wakes the claim loop: capacity freed, a wake-up, shutdown.
    private let claimSignal = WakeUpSignal()
    /// Runs in progress, for the `edda_instances_in_flight` gauge.
    private let inFlightCount = Atomic<Int>(0)
    /// Wakes the lease renewer at shutdown.
    let stopSignal = WakeUpSignal()
    /// A renewal went through: the cancellation loop reads the requests made elsewhere.
    let renewed = WakeUpSignal()
    /// Ends the cancellation loop at shutdown: its own signal, so that a stop notified while the loop
    /// is busy is still pending when it waits again.
    let cancellationLoopStop = WakeUpSignal()
    private let jobs: AsyncStream<Job>
    private let jobsContinuation: AsyncStream<Job>.Continuation
    let leaseRequest: LeaseRequest

    init(client: EddaClient, logger: Logger) {
        self.client = client
        self.store = client.store
        self.configuration = client.configuration
        self.serviceName = client.serviceName
        self.registry = client.registry
        self.outcomes = client.outcomes
        self.observer = client.observer
        self.logger = logger
        let registry = client.registry
        self.environment = EngineEnvironment(
            store: client.store, clock: client.configuration.clock, defaultRetryPolicy: client.configuration.defaultRetryPolicy,
            maxInMemoryWait: client.configuration.maxInMemoryWait, serviceName: client.serviceName,
            register: { registration in try registry.register(registration) },
            declareQueue: { [weak client] queue in try await client?.declare(queue) }, observer: client.observer
        )
        self.state = Mutex(
            State(
                machine: WorkerStateMachine(maxInFlight: client.configuration.maxConcurrentInstances),
                leases: LeaseBook(
                    leaseDuration: client.configuration.leaseDuration, renewalInterval: client.configuration.leaseRenewalInterval,
                    leasesLapse: client.store.leasesLapse
                )
            )
        )
        (jobs, jobsContinuation) = AsyncStream.makeStream(of: Job.self)
        self.leaseRequest = LeaseRequest(owner: client.configuration.workerID, duration: client.configuration.leaseDuration)
    }

    /// Runs until graceful shutdown (or cancellation) and every run has stopped.
    func run() async throws {
        try await store.attachWorker(leaseRequest.owner)
        let queues = registry.queues
        if !queues.isEmpty {
            try await store.declareQueues(queues)
            registry.markDeclared(queues)
        }
        client.attach(self)
        logger.info("edda worker running", metadata: ["edda.service": "\(serviceName)"])
        await reportUnresumable()
        // The gauge and the clock check hold nothing: cancelled as the worker stops, not waited for.
        let auxiliary = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.waitingGaugeLoop() }
                group.addTask { await self.clockSkewLoop() }
            }
        }
        defer { auxiliary.cancel() }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.claimLoop() }
                group.addTask { await self.renewLoop() }
                group.addTask { await self.lapseLoop() }
                group.addTask { await self.cancellationLoop() }
                for await job in jobs {
                    group.addTask { await self.perform(job) }
                }
                // Cancelled rather than shut down: stop the loops too.
                if Task.isCancelled { self.shutdown() }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        try? await store.detachWorker(leaseRequest.owner)
        logger.debug("edda worker stopped")
    }

    // MARK: - Instances started in this process

    /// Instances may be leased to this worker without its knowing (a create whose answer was lost):
    /// the next claim, at once, takes them back.
    func takeBackUnknownLeases() {
        state.withLock { $0.machine.takeBackUnknownLeases() }
        claimSignal.notify()
    }

    /// Reserves room for an instance this process is about to create leased to itself.
    func reserve(_ instanceID: String) -> Bool {
        state.withLock { $0.machine.reserve(instanceID) }
    }

    /// Gives back a reservation that was not used (the instance existed, or creating it failed).
    func unreserve(_ instanceID: String) {
        runEnded(instanceID)
    }

    /// Runs an instance this process created under `lease`.
    func launch(_ instance: WorkflowInstance, lease: Lease) {
        let grantedAt = ContinuousClock.now
        let (run, stopping) = state.withLock { state -> (ActiveRun, Bool) in
            let run = ActiveRun(
                instanceID: lease.instanceID, leaseValidUntil: state.leases.validUntil(lease, grantedAt: grantedAt),
                deadlines: RunDeadlines(instance, received: grantedAt)
            )
            state.leases.hold(lease, run: run, grantedAt: grantedAt)
            return (run, state.machine.phase != .running)
        }
        // Shutdown began between reserve and launch: the run stops at its first step and is released.
        if stopping { run.stop(.shutdown) }
        jobsContinuation.yield(Job(instance: instance, lease: lease, isNew: true))
    }

    /// The instances running (or about to run) in this worker.
    var inFlight: Set<String> {
        state.withLock { $0.machine.inFlight }
    }

    /// Whether the instance runs in this worker, so that its outcome will be published here.
    ///
    /// A run leaves this set before its outcome is published: a `result()` that registered its
    /// waiter and then found the instance here is sure to hear the outcome.
    /// Cancels the run of `instanceID` if it runs here (its cancellation is already in the store).
    func cancelHere(_ instanceID: String) {
        state.withLock { $0.leases.entry(instanceID)?.run }?.requestCancellation()
    }

    func isRunningHere(_ instanceID: String) -> Bool {
        state.withLock { $0.leases.entry(instanceID) != nil }
    }

    // MARK: - Claiming

    private func claimLoop() async {
        await withTaskGroup(of: Void.self) { group in
            // The store's wake-ups (new ready work elsewhere in this process) wake the claim loop.
            group.addTask {
                while !Task.isCancelled {
                    await self.store.wakeUps.wait(upTo: .seconds(3600))
                    if Task.isCancelled { return }
                    self.state.withLock { $0.machine.wakeUp() }
                    self.claimSignal.notify()
                }
            }
            while !Task.isCancelled {
                let (claim, phase, nextReadyAt) = state.withLock { state in
                    (state.machine.nextClaim(), state.machine.phase, state.machine.nextReadyAt)
                }
                guard phase == .running else { break }
                if let limit = claim {
                    await self.claim(upTo: limit)
                    continue
                }
                await waitForWork(until: nextReadyAt)
                // Signalled or timed out: either way, ready work may be waiting (the poll).
                let now = environment.clock.now()
                state.withLock { $0.machine.waited(now: now) }
            }
            group.cancelAll()
        }
    }

    private func claim(upTo limit: Int) async {
        let names = registry.names
        let claimed: [ClaimedInstance]
        let requestedAt = ContinuousClock.now
        let now = environment.clock.now()
        let adopting = state.withLock { $0.machine.adoptingLeasedExcept }
        let queues = registry.hasQueues ? registry.queues.map(\.name) : []
        do {
            claimed =
                names.isEmpty
                ? []
                : try await store.claim(
                    ClaimRequest(
                        lease: leaseRequest, limit: limit, workflowNames: names, readyBy: now, adoptingLeasedExcept: adopting, queues: queues,
                        applicationVersions: configuration.claimedVersions
                    )
                )
        } catch {
            logger.warning("claim failed; retrying at the next poll", metadata: ["edda.error": "\(error)"])
            let stopped = state.withLock { state in
                state.machine.claimFailed()
                return state.machine.claimSettled()
            }
            if stopped { finishStopping() }
            return
        }
        if !claimed.isEmpty {
            logger.debug("claimed instances", metadata: ["edda.count": "\(claimed.count)"])
        }
        // Deadlines count from the claim's answer: never early, late by no more than its way back.
        let receivedAt = ContinuousClock.now
        let byID = Dictionary(claimed.map { ($0.instance.instanceID, $0) }, uniquingKeysWith: { first, _ in first })
        let (action, stopped) = state.withLock { state in
            let action = state.machine.claimSucceeded(claimed.map(\.instance.instanceID), requested: limit, adopted: adopting != nil)
            for id in action.run {
                let (instance, lease) = (byID[id]!.instance, byID[id]!.lease)
                let run = ActiveRun(
                    instanceID: lease.instanceID, leaseValidUntil: state.leases.validUntil(lease, grantedAt: requestedAt),
                    deadlines: RunDeadlines(instance, received: receivedAt)
                )
                state.leases.hold(lease, run: run, grantedAt: requestedAt)
            }
            return (action, state.machine.claimSettled())
        }
        for id in action.run {
            jobsContinuation.yield(Job(instance: byID[id]!.instance, lease: byID[id]!.lease, isNew: false))
        }
        for id in action.release {
            await release(byID[id]!.lease, readyAt: nil)
        }
        if stopped { finishStopping() }
        if claimed.count < limit, !names.isEmpty {
            await learnNextReadyAt(after: now, workflowNames: names)
        }
    }

    /// Asks the store for the next deadline after `now` — timers set before a restart, or released by
    /// another worker — so that the claim loop wakes for it instead of at its next poll. Called when a
    /// claim drained the ready work.
    private func learnNextReadyAt(after now: Date, workflowNames: [String]) async {
        do {
            guard let next = try await store.nextReadyAt(after: now, workflowNames: workflowNames) else { return }
            arm(next)
        } catch {
            logger.debug("could not read the next deadline; polling", metadata: ["edda.error": "\(error)"])
        }
    }

    // MARK: - Running

    private func perform(_ job: Job) async {
        let id = job.instance.instanceID
        let metrics = observer.metrics
        if let metrics {
            metrics.inFlight.record(inFlightCount.add(1, ordering: .relaxed).newValue)
            if !job.isNew, let grantedAt = state.withLock({ $0.leases.entry(id)?.grantedAt }) {
                metrics.claimToRun.recordNanoseconds((ContinuousClock.now - grantedAt).nanoseconds)
            }
        }
        defer { if let metrics { metrics.inFlight.record(inFlightCount.subtract(1, ordering: .relaxed).newValue) } }
        var instance = job.instance
        var lease = job.lease
        var isNew = job.isNew
        var storeFailures = 0
        while true {
            guard let run = state.withLock({ $0.leases.entry(id)?.run }) else { break }
            guard let workflow = registry.registration(named: job.instance.workflowName) else {
                // Claims only return registered workflows; kept for safety.
                await release(lease, readyAt: nil)
                stopHolding(id)
                break
            }
            let result = await InstanceRun(
                instance: instance, lease: lease, isNew: isNew, statusIsCurrent: storeFailures == 0,
                workflow: workflow, environment: environment, activeRun: run, logger: logger
            ).run()
            switch result {
            case .completed(let output):
                stopHolding(id)
                outcomes.publish(id, .success(.completed(output)))
            case .failed(let record):
                stopHolding(id)
                outcomes.publish(id, .success(.failed(record)))
            case .cancelled(let record):
                stopHolding(id)
                outcomes.publish(id, .success(.cancelled(record)))
            case .continuedAsNew(let input, let next):
                // The next run starts now, in place, from an empty history: the same lease with the
                // token the store moved on, and a run state of its own.
                instance.input = input
                instance.status = .running
                instance.runNumber += 1
                instance.cancelRequested = run.withMachine { $0.cancellationRequested }
                lease = next
                isNew = true
                storeFailures = 0
                startNextRun(id, lease: next, deadlines: run.deadlines?.nextRun(startingAt: .now))
                continue
            case .waiting(let until):
                await release(lease, readyAt: until)
                // The store makes it ready at its deadline if that comes first: wake for it then.
                let deadline = run.deadlines?.nextDate(on: environment.clock)
                stopHolding(id, nextReadyAt: deadline.map { min($0, until ?? $0) } ?? until)
                outcomes.publish(id, nil)
            case .released(.shutdown):
                await release(lease, readyAt: nil)
                stopHolding(id)
                outcomes.publish(id, nil)
            case .released(.storeFailure):
                storeFailures += 1
                // Keep the lease and run again after a backoff: the history is durable, so the next
                // run replays what was recorded and retries what was not.
                let delay = configuration.storeRetryPolicy.delay(afterAttempt: storeFailures)
                let next = startNextRun(id, lease: lease, deadlines: run.deadlines)
                do {
                    // A cancellation does not end this backoff: the next run reads it from the store.
                    try await next.pause(for: delay)
                } catch {
                    if !next.withMachine({ $0.leaseLost }) { await release(lease, readyAt: nil) }
                    stopHolding(id)
                    outcomes.publish(id, nil)
                    break
                }
                isNew = false
                continue
            case .leaseLost:
                stopHolding(id)
                outcomes.publish(id, nil)
            }
            break
        }
        runEnded(id)
    }

    /// Makes the state of the instance's next run, fresh, under `lease`: stopped at once if the worker
    /// is stopping or the lease was found lost meanwhile.
    @discardableResult
    private func startNextRun(_ instanceID: String, lease: Lease, deadlines: RunDeadlines?) -> ActiveRun {
        let run = ActiveRun(instanceID: lease.instanceID, leaseValidUntil: nil, deadlines: deadlines)
        let (stopping, lost) = state.withLock { state -> (Bool, Bool) in
            let held = state.leases.nextRun(instanceID, run: run, lease: lease)
            run.withMachine { $0.leaseRenewed(validUntil: held?.validUntil) }
            return (state.machine.phase != .running, held?.lost ?? false)
        }
        if lost { run.stop(.leaseLost) }
        if stopping { run.stop(.shutdown) }
        return run
    }

    /// Waits for a reason to claim: a signal (capacity freed, a wake-up, shutdown), the poll interval,
    /// or the earliest deadline of a released instance — on the app's clock, which set it, so a test's
    /// manual clock moves released timers and backoffs as it moves those in memory.
    private func waitForWork(until deadline: Date?) async {
        guard let deadline else {
            await claimSignal.wait(upTo: configuration.pollInterval)
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.claimSignal.wait(upTo: self.configuration.pollInterval) }
            group.addTask { try? await self.environment.clock.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Forgets the lease of a run that ended, before its waiters hear of it (see ``isRunningHere(_:)``).
    private func stopHolding(_ instanceID: String, nextReadyAt: Date? = nil) {
        state.withLock { $0.leases.forget(instanceID) }
        if let nextReadyAt { arm(nextReadyAt) }
    }

    /// Makes the claim loop wake at `deadline` if that is sooner than what it waits for: a nearer
    /// deadline re-arms its sleep at once (the loop sleeps until its earliest deadline, or its poll).
    private func arm(_ deadline: Date) {
        let sooner = state.withLock { $0.machine.arm(deadline) }
        if sooner { claimSignal.notify() }
    }

    private func runEnded(_ instanceID: String) {
        // A run that ends may free a place in a queue: queued instances may be admitted now.
        let servesQueues = registry.hasQueues
        let (claim, stopped) = state.withLock { state in
            state.leases.forget(instanceID)
            if servesQueues { state.machine.wakeUp() }
            return state.machine.runEnded(instanceID)
        }
        if claim { claimSignal.notify() }
        if stopped { finishStopping() }
    }

    // MARK: - Shutdown

    func shutdown() {
        let (runs, stopped) = state.withLock { state in
            let (stop, stopped) = state.machine.shutdown()
            return (stop.compactMap { state.leases.entry($0)?.run }, stopped)
        }
        logger.debug("edda worker stopping: no new claims or steps; running steps record their outcome")
        for run in runs { run.stop(.shutdown) }
        claimSignal.notify()
        if stopped { finishStopping() }
    }

    func finishStopping() {
        jobsContinuation.finish()
        claimSignal.notify()
        stopSignal.notify()
        cancellationLoopStop.notify()
    }
}
