@_spi(EddaStores) import Edda
import GRDB
import Synchronization

/// SQLite's group commit: concurrent writes share one transaction through the core's ``Batcher``.
///
/// With `synchronous=FULL` every commit waits for the disk, so one commit per step caps a process
/// at the disk's commit rate however many workflows run. Each caller still returns only after the
/// commit that holds its write is durable, so durability is not weakened; a lone writer pays no
/// extra wait.
///
/// One write that fails (a duplicate step record, say) fails alone: each operation must change the
/// database with a single statement (reads around it are fine), which SQLite undoes on its own when
/// it fails while the transaction goes on, or wrap its statements in a savepoint, as a step with
/// `ctx.transaction` work does. Single-statement writes skip the savepoint, which saves two
/// statements per write. If a failure ends the transaction (disk full, I/O error), or the commit
/// fails, every write in the batch fails and none is durable.
///
/// The leader runs the transaction on its own thread (GRDB's synchronous `write`) instead of
/// hopping to GRDB's writer queue and back. That blocks one thread of the cooperative pool while
/// the disk syncs — only the leader's, so the other threads keep running workflows — and saves two
/// thread wake-ups per commit, which measured faster both alone (W1 C=1: 4,360 vs 3,300 steps/s)
/// and with 32 workflows in flight (33,800 vs 26,300–30,200 steps/s).
final class GroupCommitter: Sendable {
    typealias Operation = @Sendable (Database) throws -> Void

    private let writer: any DatabaseWriter
    /// Times each shared commit as `edda_commit_duration_seconds{backend="sqlite"}`, through the
    /// `MetricsSystem` bootstrapped when the store is created.
    private let batcher = Batcher<Operation, Void>(batchDuration: EngineMetrics.commitDuration(backend: "sqlite"))

    init(writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// Runs `body` in a write transaction, possibly shared with other callers', and returns once
    /// that transaction has committed.
    func perform<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let box = ResultBox<T>()
        try await batcher.submit({ db in box.store(try body(db)) }) { [writer] operations in
            try Self.writeOnThisThread(writer) { db in try Self.apply(operations, db) }
        }
        return box.take()
    }
}

extension GroupCommitter {
    static func apply(_ operations: [Operation], _ db: Database) throws -> [Result<Void, any Error>] {
        var results: [Result<Void, any Error>] = []
        results.reserveCapacity(operations.count)
        for operation in operations {
            do {
                try operation(db)
                results.append(.success(()))
            } catch {
                // A statement failure leaves the transaction open; anything worse ends it,
                // and then nothing of this batch may be reported as written.
                guard db.isInsideTransaction else { throw error }
                results.append(.failure(error))
            }
        }
        return results
    }

    static func writeOnThisThread<T>(_ writer: any DatabaseWriter, _ updates: (Database) throws -> T) throws -> T {
        try writer.write(updates)
    }
}

/// Carries one write's return value out of the shared transaction.
private final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)

    func store(_ newValue: T) {
        value.withLock { $0 = newValue }
    }

    func take() -> T {
        value.withLock { $0.take()! }
    }
}
