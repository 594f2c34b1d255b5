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

    /// A lease this worker holds, and the run using it (a new one for each run of the instance).
    private struct Held: Sendable {
        var lease: Lease
        var run: ActiveRun
        /// When the store last granted or renewed the lease, by this process's clock: taken before
        /// the request went out, so the lease surely lasts `leaseDuration` from then.
        var grantedAt: ContinuousClock.Instant
        /// The renewer found the lease lost: a run started under it later (after a store-failure
        /// backoff) stops at once too.
        var lost = false
    }

    private struct State: Sendable {
        var machine: WorkerStateMachine
        var held: [String: Held] = [:]
        /// The earliest time a released instance becomes ready again: the claim loop wakes then.
        var nextReadyAt: Date?
    }

    private let app: EddaApp
    private let store: any Store
    private let configuration: EddaApp.Configuration
    private let logger: Logger
    private let environment: EngineEnvironment
    private let state: Mutex<State>
    /// Wakes the claim loop: capacity freed, a wake-up, shutdown.
    private let claimSignal = WakeUpSignal()
    /// Runs in progress, for the `edda_instances_in_flight` gauge.
    private let inFlightCount = Atomic<Int>(0)
    /// Wakes the lease renewer at shutdown.
    private let stopSignal = WakeUpSignal()
    /// Ends the cancellation loop at shutdown: its own signal, so that a stop notified while the loop
    /// is busy is still pending when it waits again.
    private let cancellationLoopStop = WakeUpSignal()
    private let jobs: AsyncStream<Job>
    private let jobsContinuation: AsyncStream<Job>.Continuation
    let leaseRequest: LeaseRequest

    init(app: EddaApp, logger: Logger) {
        self.app = app
        self.store = app.store
        self.configuration = app.configuration
        self.logger = logger
        self.environment = EngineEnvironment(
            store: app.store, clock: app.configuration.clock, defaultRetryPolicy: app.configuration.defaultRetryPolicy,
            maxInMemoryWait: app.configuration.maxInMemoryWait, serviceName: app.serviceName,
            register: { [weak app] registration in try app?.register(registration) }, observer: app.observer
        )
        self.state = Mutex(State(machine: WorkerStateMachine(maxInFlight: app.configuration.maxConcurrentInstances)))
        (jobs, jobsContinuation) = AsyncStream.makeStream(of: Job.self)
        self.leaseRequest = LeaseRequest(owner: app.configuration.workerID, duration: app.configuration.leaseDuration)
    }

    /// Runs until graceful shutdown (or cancellation) and every run has stopped.
    func run() async throws {
        try await store.attachWorker(leaseRequest.owner)
        app.workerAttached(self)
        logger.info("edda worker running", metadata: ["edda.service": "\(app.serviceName)"])
        await reportUnresumable()
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
        let run = ActiveRun(lease: lease, leaseValidUntil: validUntil(lease, grantedAt: grantedAt))
        let stopping = state.withLock { state -> Bool in
            state.held[instance.instanceID] = Held(lease: lease, run: run, grantedAt: grantedAt)
            return state.machine.phase != .running
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
        state.withLock { $0.held[instanceID]?.run }?.requestCancellation()
    }

    /// Until when a lease granted (or renewed) at `grantedAt` surely holds, on the monotonic clock:
    /// the time the lapse check would stop its run. `nil` for a lease that never lapses.
    private func validUntil(_ lease: Lease, grantedAt: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard lease.expiresAt != nil else { return nil }
        return grantedAt + configuration.leaseDuration - configuration.leaseRenewalInterval
    }

    func isRunningHere(_ instanceID: String) -> Bool {
        state.withLock { $0.held[instanceID] != nil }
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
                    (state.machine.nextClaim(), state.machine.phase, state.nextReadyAt)
                }
                guard phase == .running else { break }
                if let limit = claim {
                    await self.claim(upTo: limit)
                    continue
                }
                await waitForWork(until: nextReadyAt)
                // Signalled or timed out: either way, ready work may be waiting (the poll).
                let now = environment.clock.now()
                state.withLock { state in
                    if let ready = state.nextReadyAt, ready <= now { state.nextReadyAt = nil }
                    state.machine.wakeUp()
                }
            }
            group.cancelAll()
        }
    }

    private func claim(upTo limit: Int) async {
        let names = app.registeredWorkflowNames
        let claimed: [ClaimedInstance]
        let requestedAt = ContinuousClock.now
        let now = environment.clock.now()
        do {
            claimed = names.isEmpty ? [] : try await store.claim(ClaimRequest(lease: leaseRequest, limit: limit, workflowNames: names, readyBy: now))
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
        let byID = Dictionary(claimed.map { ($0.instance.instanceID, $0) }, uniquingKeysWith: { first, _ in first })
        let (action, stopped) = state.withLock { state in
            let action = state.machine.claimSucceeded(claimed.map(\.instance.instanceID), requested: limit)
            for id in action.run {
                let lease = byID[id]!.lease
                state.held[id] = Held(
                    lease: lease, run: ActiveRun(lease: lease, leaseValidUntil: validUntil(lease, grantedAt: requestedAt)), grantedAt: requestedAt
                )
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
        let metrics = app.observer.metrics
        if let metrics {
            metrics.inFlight.record(inFlightCount.add(1, ordering: .relaxed).newValue)
            if !job.isNew, let grantedAt = state.withLock({ $0.held[id]?.grantedAt }) {
                metrics.claimToRun.recordNanoseconds((ContinuousClock.now - grantedAt).nanoseconds)
            }
        }
        defer { if let metrics { metrics.inFlight.record(inFlightCount.subtract(1, ordering: .relaxed).newValue) } }
        var instance = job.instance
        var lease = job.lease
        var isNew = job.isNew
        var storeFailures = 0
        while true {
            guard let run = state.withLock({ $0.held[id]?.run }) else { break }
            guard let workflow = app.registration(named: job.instance.workflowName) else {
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
                app.publish(id, .success(.completed(output)))
            case .failed(let record):
                stopHolding(id)
                app.publish(id, .success(.failed(record)))
            case .cancelled(let record):
                stopHolding(id)
                app.publish(id, .success(.cancelled(record)))
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
                startNextRun(id, lease: next)
                continue
            case .waiting(let until):
                await release(lease, readyAt: until)
                stopHolding(id, nextReadyAt: until)
                app.publish(id, nil)
            case .released(.shutdown):
                await release(lease, readyAt: nil)
                stopHolding(id)
                app.publish(id, nil)
            case .released(.storeFailure):
                storeFailures += 1
                // Keep the lease and run again after a backoff: the history is durable, so the next
                // run replays what was recorded and retries what was not.
                let delay = configuration.storeRetryPolicy.delay(afterAttempt: storeFailures)
                let next = startNextRun(id, lease: lease)
                do {
                    // A cancellation does not end this backoff: the next run reads it from the store.
                    try await next.sleep(until: Date().adding(delay), clock: SystemClock(), cancellable: false)
                } catch {
                    if !next.withMachine({ $0.leaseLost }) { await release(lease, readyAt: nil) }
                    stopHolding(id)
                    app.publish(id, nil)
                    break
                }
                isNew = false
                continue
            case .leaseLost:
                stopHolding(id)
                app.publish(id, nil)
            }
            break
        }
        runEnded(id)
    }

    /// Makes the state of the instance's next run, fresh, under `lease`: stopped at once if the worker
    /// is stopping or the lease was found lost meanwhile.
    @discardableResult
    private func startNextRun(_ instanceID: String, lease: Lease) -> ActiveRun {
        let (run, stopping, lost) = state.withLock { state -> (ActiveRun, Bool, Bool) in
            let grantedAt = state.held[instanceID]?.grantedAt ?? .now
            let run = ActiveRun(lease: lease, leaseValidUntil: validUntil(lease, grantedAt: grantedAt))
            state.held[instanceID]?.run = run
            state.held[instanceID]?.lease = lease
            return (run, state.machine.phase != .running, state.held[instanceID]?.lost ?? false)
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
        state.withLock { state in state.held[instanceID] = nil }
        if let nextReadyAt { arm(nextReadyAt) }
    }

    /// Makes the claim loop wake at `deadline` if that is sooner than what it waits for: a nearer
    /// deadline re-arms its sleep at once (the loop sleeps until its earliest deadline, or its poll).
    private func arm(_ deadline: Date) {
        let sooner = state.withLock { state -> Bool in
            guard deadline < state.nextReadyAt ?? .distantFuture else { return false }
            state.nextReadyAt = deadline
            return true
        }
        if sooner { claimSignal.notify() }
    }

    /// Releases a lease, trying again after a failure (a busy database, a dropped connection) for as
    /// long as the worker runs: a lease that never lapses (SQLite) and was not released would keep its
    /// instance from every claim until the process restarts. While the worker stops, a few tries; then
    /// the lease is left to lapse (or, on SQLite, to the next start, which recovers every lease).
    private func release(_ lease: Lease, readyAt: Date?) async {
        var failures = 0
        while true {
            do {
                try await store.release(lease, readyAt: readyAt)
                return
            } catch let error as StoreError where error.code == .leaseLost {
                // Another worker holds the instance now: nothing of ours to release.
                return
            } catch {
                failures += 1
                let stopping = state.withLock { $0.machine.phase != .running }
                if stopping && failures >= 3 {
                    logger.warning(
                        "could not release a lease while stopping; it lapses, or the next start recovers it",
                        metadata: ["edda.instance.id": "\(lease.instanceID)", "edda.error": "\(error)"]
                    )
                    return
                }
                logger.debug(
                    "could not release a lease; trying again",
                    metadata: ["edda.instance.id": "\(lease.instanceID)", "edda.error": "\(error)", "edda.attempt": "\(failures)"]
                )
                try? await Task.sleep(for: configuration.storeRetryPolicy.delay(afterAttempt: failures))
            }
        }
    }

    private func runEnded(_ instanceID: String) {
        let (claim, stopped) = state.withLock { state in
            state.held[instanceID] = nil
            return state.machine.runEnded(instanceID)
        }
        if claim { claimSignal.notify() }
        if stopped { finishStopping() }
    }

    // MARK: - Leases

    /// Renews every held lease in one round trip per interval, and stops the runs whose lease was lost.
    private func renewLoop() async {
        while !Task.isCancelled {
            await stopSignal.wait(upTo: configuration.leaseRenewalInterval)
            let (leases, phase) = state.withLock { state in (state.held.values.map(\.lease), state.machine.phase) }
            if phase == .stopped { return }
            if let metrics = app.observer.metrics, let waiting = try? await store.waitingCount(at: Date()) {
                metrics.waiting.record(waiting)
            }
            guard !leases.isEmpty else { continue }
            let sentAt = ContinuousClock.now
            let sent = Dictionary(leases.map { ($0.instanceID, $0.token) }, uniquingKeysWith: { first, _ in first })
            do {
                let lost = try await store.renew(leases, for: configuration.leaseDuration)
                let (renewed, lostRuns) = state.withLock { state in
                    var renewed: [(ActiveRun, ContinuousClock.Instant?)] = []
                    for (id, token) in sent where !lost.contains(id) && state.held[id]?.lease.token == token {
                        state.held[id]?.grantedAt = sentAt
                        if let held = state.held[id] { renewed.append((held.run, validUntil(held.lease, grantedAt: sentAt))) }
                    }
                    let lostRuns = lost.compactMap { id -> ActiveRun? in
                        // Only the lease that was sent: a newer lease on the same instance is not lost.
                        guard let held = state.held[id], held.lease.token == sent[id] else { return nil }
                        state.held[id]?.lost = true
                        return held.run
                    }
                    return (renewed, lostRuns)
                }
                for (run, validUntil) in renewed { run.withMachine { $0.leaseRenewed(validUntil: validUntil) } }
                if !lost.isEmpty {
                    logger.info("leases lost; stopping their runs", metadata: ["edda.count": "\(lost.count)"])
                }
                for run in lostRuns { run.stop(.leaseLost) }
                // Cancellations asked for from elsewhere (another process, the CLI) reach runs here.
                let held = sent.keys.filter { !lost.contains($0) }
                for id in try await store.cancellationRequests(among: held) { cancelHere(id) }
            } catch {
                logger.warning("lease renewal failed; retrying", metadata: ["edda.error": "\(error)"])
            }
            stopRunsWhoseLeasesLapse()
        }
    }

    /// Stops, at once, the runs here whose instances another process asked to cancel, when the store
    /// announces a cancellation (PostgreSQL's NOTIFY); the renewals catch any it could not announce.
    private func cancellationLoop() async {
        while !Task.isCancelled {
            // Whichever comes first: an announcement, or this worker's stop.
            let announced = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await self.store.cancellations.wait(upTo: .seconds(3600))
                    return !Task.isCancelled
                }
                group.addTask {
                    await self.cancellationLoopStop.wait(upTo: .seconds(3600))
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            let (held, phase) = state.withLock { state in (Array(state.held.keys), state.machine.phase) }
            if phase == .stopped { return }
            guard announced, !held.isEmpty else { continue }
            do {
                for id in try await store.cancellationRequests(among: held) { cancelHere(id) }
            } catch {
                logger.debug("could not read cancellation requests; the next renewal will", metadata: ["edda.error": "\(error)"])
            }
        }
    }

    /// Checks for leases about to lapse on a clock of its own: a renewal that hangs (a lost
    /// connection, until the store gives it up) must not keep runs going past their lease.
    private func lapseLoop() async {
        while !Task.isCancelled {
            await stopSignal.wait(upTo: configuration.leaseRenewalInterval)
            if state.withLock({ $0.machine.phase }) == .stopped { return }
            stopRunsWhoseLeasesLapse()
        }
    }

    /// Stops the runs whose lease would lapse before the next renewal could extend it — renewals
    /// have been failing — so that a run does not go on with side effects while another worker,
    /// which may claim the instance once the lease lapses, runs it too. (Its writes would be refused
    /// anyway: this is about the activities it would start.) Leases that never lapse are kept.
    private func stopRunsWhoseLeasesLapse() {
        let deadline = ContinuousClock.now + configuration.leaseRenewalInterval - configuration.leaseDuration
        let runs = state.withLock { state -> [ActiveRun] in
            state.held.compactMap { id, held -> ActiveRun? in
                guard held.lease.expiresAt != nil, !held.lost, held.grantedAt <= deadline else { return nil }
                state.held[id]?.lost = true
                return held.run
            }
        }
        guard !runs.isEmpty else { return }
        logger.warning(
            "leases about to lapse without renewal; stopping their runs",
            metadata: ["edda.count": "\(runs.count)", "edda.lease.duration": "\(configuration.leaseDuration)"]
        )
        for run in runs { run.stop(.leaseLost) }
    }

    // MARK: - Shutdown

    private func shutdown() {
        let (runs, stopped) = state.withLock { state in
            let (stop, stopped) = state.machine.shutdown()
            return (stop.compactMap { state.held[$0]?.run }, stopped)
        }
        logger.debug("edda worker stopping: no new claims or steps; running steps record their outcome")
        for run in runs { run.stop(.shutdown) }
        claimSignal.notify()
        if stopped { finishStopping() }
    }

    private func finishStopping() {
        jobsContinuation.finish()
        claimSignal.notify()
        stopSignal.notify()
        cancellationLoopStop.notify()
    }

    /// Logs, once at start, the instances left running whose workflow this app has not registered:
    /// this worker never claims them.
    private func reportUnresumable() async {
        let registered = Set(app.registeredWorkflowNames)
        var unresumable: [String: Int] = [:]
        defer {
            // One line for all of them: a deployment missing a workflow may leave thousands.
            if !unresumable.isEmpty {
                logger.warning(
                    "instances left running by workflows this app has not registered; this worker does not claim them",
                    metadata: ["edda.workflows": "\(unresumable.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))"]
                )
            }
        }
        do {
            for status in [InstanceStatus.running, .compensating] {
                var cursor: InstanceCursor?
                repeat {
                    let page = try await store.instances(
                        matching: InstanceQuery(status: status, excludingWorkflowNames: registered, limit: 500, after: cursor)
                    )
                    for instance in page.instances {
                        app.markUnresumable(instance)
                        unresumable[instance.workflowName, default: 0] += 1
                    }
                    cursor = page.nextCursor
                } while cursor != nil
            }
        } catch {
            logger.warning("cannot list instances of unregistered workflows", metadata: ["edda.error": "\(error)"])
        }
    }
}
