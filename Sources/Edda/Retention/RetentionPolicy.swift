/// How long something is kept: a period, or ``forever``.
///
/// ```swift
/// configuration.retention.finishedInstances = .days(30)
/// configuration.retention.publishedOutboxEvents = .hours(12)
/// configuration.retention.workflows["audit_trail"] = .forever
/// ```
///
/// A closed choice (a period or forever), as an opaque struct so that more kinds can be added.
public struct RetentionPeriod: Sendable, Hashable, CustomStringConvertible {
    /// How long, or `nil` for forever.
    public let duration: Duration?

    private init(_ duration: Duration?) { self.duration = duration }

    /// Kept until deleted by hand: the pruner never deletes it.
    public static let forever = RetentionPeriod(nil)

    /// Kept for `duration` (measured from when the row was finished, published or given up), then pruned.
    ///
    /// A negative duration counts as zero.
    public static func duration(_ duration: Duration) -> RetentionPeriod {
        RetentionPeriod(max(duration, .zero))
    }

    /// Kept for `days` days.
    public static func days(_ days: Int) -> RetentionPeriod { .duration(.seconds(Int64(days) * 86_400)) }

    /// Kept for `hours` hours.
    public static func hours(_ hours: Int) -> RetentionPeriod { .duration(.seconds(Int64(hours) * 3_600)) }

    /// Whether the pruner ever deletes what this period covers.
    public var isForever: Bool { duration == nil }

    /// `forever`, or the duration (`2592000.0 seconds`).
    public var description: String {
        guard let duration else { return "forever" }
        return "\(duration)"
    }
}

/// What the pruner deletes, and how: retention periods for finished instances (with their history
/// and archived history), outbox events and channel messages.
///
/// Set it on ``EddaApp/Configuration-swift.struct/retention``; the app's worker then runs a pruner
/// beside itself. The default keeps everything that tells what your workflows did — finished
/// instances, their history, undeliverable outbox events — **forever**, and deletes only rows that
/// are no use to anyone: outbox events the receiver accepted (after 7 days) and channel messages
/// whose retention has passed (they can no longer be delivered).
///
/// ```swift
/// var configuration = EddaApp.Configuration()
/// configuration.retention.finishedInstances = .days(30)          // every workflow…
/// configuration.retention.workflows["invoice"] = .days(3_650)    // …but invoices: ten years
/// configuration.retention.keep(nightlyReport, for: .days(7))     // or with the workflow value
/// ```
///
/// Whatever the periods, the pruner never deletes an instance that is not finished (running,
/// compensating, or a status this version of Edda does not know), nor its history, nor a finished
/// child whose parent is not finished (the parent may still ask for its result), nor a finished
/// parent with a child still running (the child reports to it when it ends), nor an outbox event
/// still pending or being delivered, nor a message before its own retention (``Channel/retention``)
/// has passed.
public struct RetentionPolicy: Sendable, Hashable {
    /// How long a completed, failed or cancelled instance is kept after it finished, with its
    /// history and the archived history of its earlier runs (continue-as-new, retries).
    /// Defaults to ``RetentionPeriod/forever``: history is your audit trail, and deleting it is
    /// something to ask for, not to find out about after an upgrade.
    public var finishedInstances: RetentionPeriod = .forever

    /// Per-workflow overrides of ``finishedInstances``, by workflow name. Defaults to none.
    ///
    /// Kept in the configuration, not on the ``Workflow``: how long records must be kept is the
    /// deploying application's decision (compliance, disk), and a workflow may come from a library.
    public var workflows: [String: RetentionPeriod] = [:]

    /// How long an outbox event the receiver accepted (``OutboxStatus/published``) is kept after
    /// its delivery was recorded. Defaults to 7 days (the seed's message retention).
    public var publishedOutboxEvents: RetentionPeriod = .days(7)

    /// How long an outbox event that will not be delivered (``OutboxStatus/failed``,
    /// ``OutboxStatus/invalid``, ``OutboxStatus/expired``) is kept after it was given up.
    /// Defaults to ``RetentionPeriod/forever``: an operator should see why it failed.
    public var undeliveredOutboxEvents: RetentionPeriod = .forever

    /// How often the app's pruner runs; its first pass is one interval after the app starts.
    /// Defaults to 5 minutes.
    public var interval: Duration = .seconds(300)

    /// The most rows one pruning transaction deletes from each table it prunes (instances —
    /// with their history and archive in the same transaction —, outbox events, messages). Small
    /// batches keep the write path free: SQLite has one writer, and the pruner's transactions
    /// queue with the steps'. Defaults to 500.
    public var batchSize: Int = 500

    /// The default: finished instances and undeliverable outbox events kept forever, published
    /// outbox events for 7 days, expired messages deleted.
    public init() {}

    /// A policy that deletes everything finished, published or given up once it is older than
    /// `age` (what `edda prune --older-than` uses).
    public init(olderThan age: RetentionPeriod) {
        finishedInstances = age
        publishedOutboxEvents = age
        undeliveredOutboxEvents = age
    }

    /// How long finished instances of the workflow named `workflowName` are kept.
    public func finishedInstances(of workflowName: String) -> RetentionPeriod {
        workflows[workflowName] ?? finishedInstances
    }

    /// Keeps finished instances of `workflow` for `period`, whatever ``finishedInstances`` says.
    public mutating func keep<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>, for period: RetentionPeriod) {
        workflows[workflow.name] = period
    }
}
