import Foundation
import CoreMetrics
import Logging
import Synchronization

/// The worker's leases at work: renewals, the lapse check, cancellations announced from elsewhere,
/// and releases. What each renewal or lapse means is decided by the ``LeaseBook``.
extension Worker {
    /// Renews every held lease in one round trip per interval, and stops the runs whose lease was lost.
    func renewLoop() async {
        while !Task.isCancelled {
            await stopSignal.wait(upTo: configuration.leaseRenewalInterval)
            let (leases, phase) = state.withLock { state in (state.leases.leases, state.machine.phase) }
            if phase == .stopped { return }
            await renew(leases)
            stopRunsWhoseLeasesLapse()
        }
    }

    /// Records the `edda_instances_waiting` gauge every renewal interval, in a loop of its own: its
    /// query shares the store's pool with steps, and must never hold up a renewal. Runs until
    /// cancelled, as the worker stops.
    func waitingGaugeLoop() async {
        guard let metrics = observer.metrics else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.leaseRenewalInterval)
            if Task.isCancelled { return }
            if let waiting = try? await store.waitingCount(at: Date()) { metrics.waiting.record(waiting) }
        }
    }

    /// Renews `leases` in one round trip, stops the runs whose lease was lost, and hears the
    /// cancellations asked for from elsewhere.
    private func renew(_ leases: [Lease]) async {
        guard !leases.isEmpty else { return }
        let sentAt = ContinuousClock.now
        do {
            let lost = try await store.renew(leases, for: configuration.leaseDuration)
            let (renewed, lostRuns) = state.withLock { $0.leases.renewed(leases, lost: lost, sentAt: sentAt) }
            for (run, validUntil) in renewed { run.withMachine { $0.leaseRenewed(validUntil: validUntil) } }
            if !lost.isEmpty {
                logger.info("leases lost; stopping their runs", metadata: ["edda.count": "\(lost.count)"])
            }
            for run in lostRuns { run.stop(.leaseLost) }
            // Cancellations asked for from elsewhere (another process, the CLI) are read now, in the
            // cancellation loop: nothing holds up the next renewal.
            self.renewed.notify()
        } catch {
            logger.warning("lease renewal failed; retrying", metadata: ["edda.error": "\(error)"])
        }
    }

    /// Compares this worker's clock with the database server's, at start and every minute, and
    /// warns when they differ by more than ``EddaApp/Configuration-swift.struct/maxClockSkew``.
    /// Runs until cancelled, as the worker stops.
    func clockSkewLoop() async {
        // A test's manual clock is meant to differ from the server's.
        guard configuration.clock.isRealTime else { return }
        while !Task.isCancelled {
            await checkClockSkew()
            try? await Task.sleep(for: .seconds(60))
        }
    }

    func checkClockSkew() async {
        let sent = ContinuousClock.now
        guard let server = try? await store.serverNow() else { return }
        // The server read its clock about halfway through the round trip.
        let roundTrip = ContinuousClock.now - sent
        let skew = configuration.clock.now().addingTimeInterval(-roundTrip.seconds / 2).timeIntervalSince(server)
        guard abs(skew) > configuration.maxClockSkew.seconds else { return }
        let amount = String(format: "%.1f s", abs(skew))
        logger.warning(
            "this worker's clock is \(amount) \(skew > 0 ? "ahead of" : "behind") the database server's: the durable timers and retry backoffs it claims fire up to \(amount) \(skew > 0 ? "early" : "late"), and those it sets are off by as much for other workers. Sync the clocks (NTP).",
            metadata: ["edda.clock.skew_seconds": "\(skew)", "edda.clock.max_skew": "\(configuration.maxClockSkew)"]
        )
    }

    /// Stops, at once, the runs here whose instances another process asked to cancel, when the store
    /// announces a cancellation (PostgreSQL's NOTIFY), and after each lease renewal, for those it
    /// could not announce.
    func cancellationLoop() async {
        while !Task.isCancelled {
            // Whichever comes first: an announcement, a renewal, or this worker's stop.
            let announced = await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await self.store.cancellations.wait(upTo: .seconds(3600))
                    return !Task.isCancelled
                }
                group.addTask {
                    await self.renewed.wait(upTo: .seconds(3600))
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
            let (held, phase) = state.withLock { state in (Array(state.leases.entries.keys), state.machine.phase) }
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
    func lapseLoop() async {
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
    func stopRunsWhoseLeasesLapse() {
        let now = ContinuousClock.now
        let runs = state.withLock { $0.leases.lapsing(now: now) }
        guard !runs.isEmpty else { return }
        logger.warning(
            "leases about to lapse without renewal; stopping their runs",
            metadata: ["edda.count": "\(runs.count)", "edda.lease.duration": "\(configuration.leaseDuration)"]
        )
        for run in runs { run.stop(.leaseLost) }
    }

    /// Releases a lease, trying again after a failure (a busy database, a dropped connection) for as
    /// long as the worker runs: a lease that never lapses (SQLite) and was not released would keep its
    /// instance from every claim until the process restarts. While the worker stops, a few tries; then
    /// the lease is left to lapse (or, on SQLite, to the next start, which recovers every lease).
    func release(_ lease: Lease, readyAt: Date?) async {
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
}
