import Foundation

/// An instance's deadlines during one run, on this process's monotonic clock: when the run is to be
/// cancelled, and the reason it records.
///
/// The store keeps deadlines on its own clock; a claim (or a create) returns them with the time of
/// the claim on that same clock (``WorkflowInstance/lastClaimedAt``), so the time left is known
/// without comparing this machine's clock with the database's: a worker whose clock is off still
/// cancels on time.
struct RunDeadlines: Sendable {
    struct Deadline: Sendable {
        var at: ContinuousClock.Instant
        var exceeded: DeadlineExceeded
    }

    /// The whole instance's (its own, or its parent's).
    var workflow: Deadline?
    /// This run's.
    var run: Deadline?
    /// Each run's timeout, for the next run's deadline.
    let runTimeout: Duration?
    /// A moment on the store's clock and the same moment here: to name a run deadline set here.
    private let anchor: (stored: Date, local: ContinuousClock.Instant)

    /// The deadlines of `instance`, as a claim or a create returned it at `received` (on this
    /// process's clock); `nil` when it has none.
    init?(_ instance: WorkflowInstance, received: ContinuousClock.Instant) {
        let stored = instance.lastClaimedAt ?? instance.createdAt
        // Taken out of line by its queue deadline (admission clears it): cancelled before its first step.
        if let queueDeadline = instance.queueDeadline, instance.status != .queued, queueDeadline <= stored,
            instance.deadline.map({ queueDeadline < $0 }) ?? true
        {
            anchor = (stored, received)
            runTimeout = nil
            run = Deadline(at: received, exceeded: DeadlineExceeded(kind: .queueTimeout, timeout: instance.queueTimeout, deadline: queueDeadline))
            return
        }
        guard let deadline = instance.deadline else { return nil }
        anchor = (stored, received)
        runTimeout = instance.runTimeout
        func local(_ date: Date) -> ContinuousClock.Instant {
            received.advanced(by: .milliseconds(date.millisecondsSince1970 - stored.millisecondsSince1970))
        }
        if let workflowDeadline = instance.workflowDeadline, let exceeded = instance.workflowDeadlineExceeded {
            workflow = Deadline(at: local(workflowDeadline), exceeded: exceeded)
        }
        if instance.workflowDeadline.map({ deadline < $0 }) ?? true {
            run = Deadline(at: local(deadline), exceeded: DeadlineExceeded(kind: .runTimeout, timeout: runTimeout, deadline: deadline))
        }
    }

    /// The deadline that passes first.
    var next: Deadline? {
        guard let workflow, let run else { return workflow ?? run }
        return run.at < workflow.at ? run : workflow
    }

    /// The deadlines of the next run of a continue-as-new chain, which starts `now`: the workflow's
    /// stays, the run's is `now` plus the run timeout (as the store sets it).
    func nextRun(startingAt now: ContinuousClock.Instant) -> RunDeadlines {
        var next = self
        if let runTimeout {
            let at = now.advanced(by: runTimeout)
            let stored = anchor.stored.addingTimeInterval((at - anchor.local).seconds)
            next.run = Deadline(at: at, exceeded: DeadlineExceeded(kind: .runTimeout, timeout: runTimeout, deadline: stored))
        }
        return next
    }

    /// The next deadline on `clock` (the app's), for the worker to wake for a waiting instance then.
    func nextDate(on clock: any WorkflowClock) -> Date? {
        next.map { clock.now().addingTimeInterval(($0.at - .now).seconds) }
    }
}

extension WorkflowInstance {
    /// What cancels the instance at its ``workflowDeadline``: its own workflow timeout, or its parent's deadline.
    var workflowDeadlineExceeded: DeadlineExceeded? {
        guard let workflowDeadline else { return nil }
        // Its own workflow deadline is its start plus its timeout; an earlier one is its parent's.
        if let workflowTimeout, parentInstanceID == nil
            || abs(createdAt.addingTimeInterval(workflowTimeout.seconds).timeIntervalSince(workflowDeadline)) < 0.002
        {
            return DeadlineExceeded(kind: .workflowTimeout, timeout: workflowTimeout, deadline: workflowDeadline)
        }
        return DeadlineExceeded(kind: .inherited, timeout: nil, deadline: workflowDeadline, parentInstanceID: parentInstanceID)
    }
}
