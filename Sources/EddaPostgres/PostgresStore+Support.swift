@_spi(EddaStores) import Edda
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Quoted names of Edda's tables in one schema.
struct Tables: Sendable {
    let schema: String
    let instances: String
    let history: String
    let migrations: String
    let outbox: String
    let archive: String
    let channelModes: String
    let messages: String
    let waits: String
    let queues: String
    let schedules: String
    /// The LISTEN/NOTIFY channel of this schema's workers.
    let channel: String

    init(schema: String) throws {
        // 58: the notification channel is "edda_" + the schema, within PostgreSQL's 63 bytes.
        guard let first = schema.first, first.isLetter || first == "_", schema.count <= 58,
              schema.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        else {
            throw StoreError(
                .database,
                "'\(schema)' is not a schema name Edda accepts: use at most 58 letters, digits and underscores, starting with a letter."
            )
        }
        self.schema = "\"\(schema)\""
        self.instances = "\"\(schema)\".workflow_instances"
        self.history = "\"\(schema)\".workflow_history"
        self.migrations = "\"\(schema)\".edda_schema_migrations"
        self.outbox = "\"\(schema)\".outbox_events"
        self.archive = "\"\(schema)\".workflow_history_archive"
        self.channelModes = "\"\(schema)\".channel_modes"
        self.messages = "\"\(schema)\".channel_messages"
        self.waits = "\"\(schema)\".workflow_waits"
        self.queues = "\"\(schema)\".workflow_queues"
        self.schedules = "\"\(schema)\".workflow_schedules"
        self.channel = "edda_\(schema)"
    }

    /// An index name (indexes live in their table's schema).
    func indexName(_ name: String) -> String { "edda_\(name)" }
}

/// A driver error, described by the server's message and SQLSTATE (PostgresNIO's own description
/// hides both, to keep queries out of logs).
struct ServerError: Error, CustomStringConvertible {
    let underlying: any Error

    init(_ error: any Error) {
        switch error {
        case let error as ServerError:
            self.underlying = error.underlying
        case let error as PostgresTransactionError:
            // The first thing that went wrong inside `withTransaction`.
            let first = error.beginError ?? error.closureError ?? error.commitError ?? error.rollbackError
            self.underlying = first.map { ServerError($0).underlying } ?? error
        default:
            self.underlying = error
        }
    }

    var sqlState: String? { (underlying as? PSQLError)?.serverInfo?[.sqlState] }
    /// The server's message, if the server sent one.
    var message: String? { (underlying as? PSQLError)?.serverInfo?[.message] }

    var description: String {
        guard let error = underlying as? PSQLError else { return "\(underlying)" }
        if let info = error.serverInfo, let message = info[.message] {
            return "\(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        // The driver's own failure (a refused connection, a TLS error): its cause says what happened.
        if let cause = error.underlying {
            return "PostgreSQL client error \(error.code): \(cause)"
        }
        return "PostgreSQL client error \(error.code)"
    }
}

/// Opens once the store has migrated (or failed to); operations wait for it.
final class Readiness: Sendable {
    private enum State {
        case waiting([UUID: CheckedContinuation<Void, any Error>])
        case open((any Error)?)
    }

    private let state = Mutex(State.waiting([:]))
    /// Whether the store's `run()` has begun: a long wait then means a slow server, not a store
    /// nobody runs.
    private let starting = Atomic(false)

    func markStarting() {
        starting.store(true, ordering: .relaxed)
    }

    func open(_ error: (any Error)?) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            if case .waiting(let waiters) = state {
                state = .open(error)
                return Array(waiters.values)
            }
            if error != nil { state = .open(error) }
            return []
        }
        for waiter in waiters {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }

    /// Waits until the store is ready (or failed); throws `CancellationError` if the task is cancelled
    /// first, and logs a warning if it waits long — usually because the store's `run()` never started.
    func wait(logger: Logger) async throws {
        if case .open(let error) = state.withLock({ $0 }) {
            if let error { throw error }
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.waitOpen() }
            group.addTask {
                try await Task.sleep(for: .seconds(10))
                if self.starting.load(ordering: .relaxed) {
                    logger.debug("still waiting for the PostgreSQL store: it is connecting and migrating (it gives up after its startup timeout)")
                } else {
                    logger.warning("still waiting for the PostgreSQL store to start: is its run() running (EddaApp.run or a ServiceGroup)?")
                }
                try await Task.sleep(for: .seconds(3600 * 24 * 365))
            }
            try await group.next()
            group.cancelAll()
        }
    }

    private func waitOpen() async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> (any Error)?? in
                    switch state {
                    case .waiting(var waiters):
                        if Task.isCancelled { return .some(CancellationError()) }
                        waiters[id] = continuation
                        state = .waiting(waiters)
                        return nil
                    case .open(let error):
                        return .some(error)
                    }
                }
                switch outcome {
                case .none: break
                case .some(nil): continuation.resume()
                case .some(.some(let error)): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard case .waiting(var waiters) = state, let waiter = waiters.removeValue(forKey: id) else { return nil }
                state = .waiting(waiters)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}

extension Duration {
    /// Whole milliseconds, for lease durations.
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
