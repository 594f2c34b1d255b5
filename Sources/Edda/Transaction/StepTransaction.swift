import Synchronization

/// What one attempt of a step asked to commit together with the step's history record: the bodies
/// given to ``ActivityContext/transaction(_:)``, the events given to ``ActivityContext/enqueue(_:)``,
/// and the callbacks to run once that commit is durable.
///
/// The engine builds one per attempt and hands it to ``WorkflowStore/append(_:with:lease:)`` with the step's
/// outcome. A backend opens (or joins) a write transaction, calls ``run(session:savepoint:)`` with
/// its own connection, writes ``outboxEvents`` and the history record, and commits: all of it or
/// none of it. Nothing is held while the activity's body runs, so a body that waits minutes on the
/// network keeps no lock.
public final class StepTransaction: Sendable {
    typealias Work = @Sendable (Any) throws -> Void

    /// The store's connection while ``run(session:savepoint:)`` runs. Only read synchronously on
    /// the thread that runs the bodies, during that call.
    private struct ActiveSession: @unchecked Sendable {
        let value: Any
        let savepoint: (() throws -> Void) throws -> Void
    }

    private struct State {
        var work: [Work] = []
        var events: [CloudEvent] = []
        var afterCommit: [@Sendable () async -> Void] = []
        var active: ActiveSession?
        var sealed = false
        var bodyFailure: (any Error)?
    }

    private let state = Mutex(State())

    package init() {}

    /// Whether the step asked for nothing but its record.
    public var isEmpty: Bool {
        state.withLock { $0.work.isEmpty && $0.events.isEmpty }
    }

    /// The outbox events to insert with the record, in the order they were enqueued. Read it after
    /// ``run(session:savepoint:)``: the bodies may enqueue more.
    public var outboxEvents: [CloudEvent] {
        state.withLock { $0.events }
    }

    /// Runs the step's transaction bodies, in order, on the store's connection.
    ///
    /// - Parameters:
    ///   - session: The store's connection, inside the write transaction that will hold the record
    ///     (a GRDB `Database` for `SQLiteStore`).
    ///   - savepoint: Runs a closure inside a savepoint of that transaction: a nested
    ///     ``ActivityContext/transaction(_:)`` uses it, so its writes roll back alone if it throws.
    /// - Throws: The first error a body throws. The caller rolls back everything the bodies wrote.
    public func run(session: Any, savepoint: @escaping (() throws -> Void) throws -> Void) throws {
        let work = state.withLock { state -> [Work] in
            state.active = ActiveSession(value: session, savepoint: savepoint)
            return state.work
        }
        defer { state.withLock { $0.active = nil } }
        do {
            for body in work {
                try body(session)
            }
        } catch {
            state.withLock { $0.bodyFailure = error }
            throw error
        }
    }

    /// Fails the attempt with `error`, as if a body had thrown it: for a backend that cannot run
    /// this step's transaction. The step is retried by its policy (throw a ``TerminalError`` to stop
    /// it), and nothing of it is written. Returns `error`, for the backend to throw.
    public func refuse(_ error: any Error) -> any Error {
        state.withLock { $0.bodyFailure = error }
        return error
    }

    /// The error a body threw during ``run(session:savepoint:)``: the attempt failed, not the store.
    var bodyFailure: (any Error)? {
        state.withLock { $0.bodyFailure }
    }

    /// The body returned: from now on only the transaction's own bodies may add to it.
    func seal() {
        state.withLock { $0.sealed = true }
    }

    /// The callbacks to run now that the record committed.
    var afterCommitCallbacks: [@Sendable () async -> Void] {
        state.withLock { $0.afterCommit }
    }

    func add(_ body: @escaping Work, stepID: String) throws {
        // Inside a running transaction (a nested call), run now in a savepoint.
        let nested = try state.withLock { state -> (ActiveSession, events: Int, callbacks: Int)? in
            if let active = state.active { return (active, state.events.count, state.afterCommit.count) }
            guard !state.sealed else { throw Self.sealedError(stepID: stepID, what: "ctx.transaction") }
            state.work.append(body)
            return nil
        }
        guard let (active, events, callbacks) = nested else { return }
        do {
            try active.savepoint { try body(active.value) }
        } catch {
            // The savepoint undid the body's writes; its events and callbacks go with them.
            state.withLock { state in
                state.events.removeSubrange(events...)
                state.afterCommit.removeSubrange(callbacks...)
            }
            throw error
        }
    }

    func enqueue(_ event: CloudEvent, stepID: String) throws {
        try state.withLock { state in
            guard state.active != nil || !state.sealed else { throw Self.sealedError(stepID: stepID, what: "ctx.enqueue") }
            state.events.append(event)
        }
    }

    func afterCommit(_ callback: @escaping @Sendable () async -> Void, stepID: String) throws {
        try state.withLock { state in
            guard !state.sealed || state.active != nil else { throw Self.sealedError(stepID: stepID, what: "ctx.afterCommit") }
            state.afterCommit.append(callback)
        }
    }

    var activeSession: Any? {
        state.withLock { $0.active?.value }
    }

    private static func sealedError(stepID: String, what: String) -> EngineError {
        EngineError(
            .transactionClosed,
            "\(what) was called after step '\(stepID)' returned. Call it from the activity's body, before it returns.",
            stepID: stepID
        )
    }
}
