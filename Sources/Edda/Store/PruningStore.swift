/// Deleting what a ``RetentionPolicy`` no longer keeps, in small transactions.
///
/// Both calls measure ages with the store's own clock (the database server's, on PostgreSQL),
/// as the rows' times were written with it. Neither may ever delete, or count:
/// - an instance whose status is not ``InstanceStatus/completed``, ``InstanceStatus/failed`` or
///   ``InstanceStatus/cancelled`` (unknown statuses included), nor its history or archive;
/// - a finished child whose parent exists and is not finished, nor a finished parent with a
///   child that is not finished;
/// - an outbox event that is ``OutboxStatus/pending`` or ``OutboxStatus/processing``;
/// - a channel message before its expiry.
public protocol PruningStore: Sendable {
    /// Deletes, in **one** transaction, at most `limit` finished instances older than their
    /// workflow's period (``RetentionPolicy/finishedInstances(of:)``, measured from their last
    /// update) with their history, archived history and the messages kept for them; at most `limit`
    /// outbox events of each kept-too-long status; and at most `limit` expired channel messages.
    /// Returns what it deleted; the caller repeats until it deletes nothing.
    @_spi(EddaStores) func pruneBatch(_ policy: RetentionPolicy, limit: Int) async throws -> PruneCounts

    /// What pruning with `policy` would delete now, all batches together. Writes nothing.
    @_spi(EddaStores) func prunableCounts(_ policy: RetentionPolicy) async throws -> PruneCounts
}

extension PruningStore {
    /// Refuses: this store has no pruning.
    @_spi(EddaStores) public func pruneBatch(_ policy: RetentionPolicy, limit: Int) async throws -> PruneCounts {
        throw StoreError(.database, "\(Self.self) cannot prune; nothing was deleted. Use SQLiteStore or PostgresStore.")
    }

    /// Refuses: this store has no pruning.
    @_spi(EddaStores) public func prunableCounts(_ policy: RetentionPolicy) async throws -> PruneCounts {
        throw StoreError(.database, "\(Self.self) cannot prune; nothing was counted. Use SQLiteStore or PostgresStore.")
    }
}

/// How many rows pruning deleted (or, for a dry run, would delete), per table.
public struct PruneCounts: Sendable, Hashable, CustomStringConvertible {
    /// Finished instances.
    public var instances = 0
    /// Their history records.
    public var history = 0
    /// The archived history of their earlier runs.
    public var archivedHistory = 0
    /// Channel messages: expired ones, and those kept for a pruned instance.
    public var messages = 0
    /// Published and undeliverable outbox events.
    public var outboxEvents = 0

    /// Counts, zero unless given.
    public init(instances: Int = 0, history: Int = 0, archivedHistory: Int = 0, messages: Int = 0, outboxEvents: Int = 0) {
        self.instances = instances
        self.history = history
        self.archivedHistory = archivedHistory
        self.messages = messages
        self.outboxEvents = outboxEvents
    }

    /// Every row together.
    public var total: Int { instances + history + archivedHistory + messages + outboxEvents }

    /// The counts by table name, as the CLI and the `edda_rows_pruned_total` metric name them.
    public var byTable: [(table: String, rows: Int)] {
        [("instances", instances), ("history", history), ("history_archive", archivedHistory), ("messages", messages), ("outbox", outboxEvents)]
    }

    /// The counts of two batches (or passes) together.
    public static func + (lhs: PruneCounts, rhs: PruneCounts) -> PruneCounts {
        PruneCounts(
            instances: lhs.instances + rhs.instances, history: lhs.history + rhs.history,
            archivedHistory: lhs.archivedHistory + rhs.archivedHistory, messages: lhs.messages + rhs.messages,
            outboxEvents: lhs.outboxEvents + rhs.outboxEvents
        )
    }

    /// `instances: 2, history: 14, …`, for logs.
    public var description: String {
        byTable.map { "\($0.table): \($0.rows)" }.joined(separator: ", ")
    }
}

extension RetentionPolicy {
    /// The statuses of outbox events this policy prunes, each with its period in milliseconds
    /// (those kept forever left out).
    @_spi(EddaStores) public var prunedOutboxStatuses: [(status: OutboxStatus, ageMilliseconds: Int64)] {
        var statuses: [(OutboxStatus, Int64)] = []
        if let age = publishedOutboxEvents.milliseconds { statuses.append((.published, age)) }
        if let age = undeliveredOutboxEvents.milliseconds {
            statuses += [(.failed, age), (.invalid, age), (.expired, age)]
        }
        return statuses
    }
}

extension RetentionPeriod {
    /// The period in whole milliseconds (rows' times are stored so), or `nil` for forever.
    @_spi(EddaStores) public var milliseconds: Int64? {
        guard let duration else { return nil }
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
