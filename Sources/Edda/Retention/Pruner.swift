package import CoreMetrics
package import Logging
import ServiceLifecycle

/// Deletes, every ``RetentionPolicy/interval``, what the policy no longer keeps: batch after batch
/// of at most ``RetentionPolicy/batchSize`` rows per table, each batch its own short transaction,
/// so that the write path (SQLite's single writer) waits for one batch at most.
///
/// A running ``EddaApp`` runs one beside its worker. Each pass logs at debug and adds what it
/// deleted to the counter `edda_rows_pruned_total{table=…}` (`instances`, `history`,
/// `history_archive`, `messages`, `outbox`). A failed pass is logged at debug and tried again at
/// the next interval: pruning is never urgent.
package struct Pruner<WaitClock: Clock<Duration>>: Service {
    let store: any Store
    let policy: RetentionPolicy
    let clock: WaitClock
    let logger: Logger
    let counters: [String: Counter]

    /// - Parameters:
    ///   - metricsFactory: Where `edda_rows_pruned_total` goes; `nil` reports no metric.
    package init(store: any Store, policy: RetentionPolicy, clock: WaitClock, metricsFactory: (any MetricsFactory)?, logger: Logger) {
        self.store = store
        self.policy = policy
        self.clock = clock
        self.logger = logger
        var counters: [String: Counter] = [:]
        if let metricsFactory {
            for table in PruneCounts().byTable.map(\.table) {
                counters[table] = Counter(label: "edda_rows_pruned_total", dimensions: [("table", table)], factory: metricsFactory)
            }
        }
        self.counters = counters
    }

    /// Prunes every interval until graceful shutdown or cancellation.
    package func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            do {
                try await cancelWhenGracefulShutdown { try await clock.sleep(for: policy.interval) }
            } catch {
                return
            }
            guard !Task.isCancelledOrShuttingDown else { return }
            await pass()
        }
    }

    /// One pass: batches until one deletes nothing (or the app stops). Returns what it deleted.
    @discardableResult
    package func pass() async -> PruneCounts {
        var total = PruneCounts()
        do {
            total = try await Self.prune(store, policy: policy, shouldStop: { Task.isCancelledOrShuttingDown }) { batch in
                for (table, rows) in batch.byTable where rows > 0 { counters[table]?.increment(by: rows) }
            }
            logger.debug("pruned", metadata: Self.metadata(total))
        } catch {
            logger.debug("pruning failed; trying again at the next interval", metadata: ["edda.error": "\(error)"])
        }
        return total
    }

    /// Deletes, batch after batch, everything `policy` no longer keeps; `afterBatch` sees each
    /// batch's counts. Stops when a batch deletes nothing or `shouldStop` says so.
    package static func prune(
        _ store: any Store, policy: RetentionPolicy, shouldStop: @Sendable () -> Bool = { false },
        afterBatch: (PruneCounts) -> Void = { _ in }
    ) async throws -> PruneCounts {
        let limit = max(policy.batchSize, 1)
        var total = PruneCounts()
        while !shouldStop() {
            let batch = try await store.pruneBatch(policy, limit: limit)
            afterBatch(batch)
            total = total + batch
            if batch.total == 0 { break }
            // Let the writes queued behind this batch go first.
            await Task.yield()
        }
        return total
    }

    static func metadata(_ counts: PruneCounts) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        for (table, rows) in counts.byTable { metadata["edda.pruned.\(table)"] = "\(rows)" }
        return metadata
    }
}

extension Task where Success == Never, Failure == Never {
    fileprivate static var isCancelledOrShuttingDown: Bool { isCancelled || isShuttingDownGracefully }
}
