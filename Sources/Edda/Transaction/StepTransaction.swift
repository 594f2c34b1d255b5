import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one attempt of a step asked to commit together with the step's history record: the bodies
/// given to `ctx.transaction`, the events given to ``ActivityContext/enqueue(_:)``, and the
/// callbacks to run once that commit is durable.
///
/// The engine builds one per attempt and hands it to the store with the step's outcome
/// (``WorkflowStore/append(_:with:lease:)``), or with the whole attempt
/// (``WorkflowStore/appendRunningAttempt(_:lease:attempt:)``). A backend opens (or joins) a write
/// transaction, runs the bodies with its own connection through one of the typed `run` methods,
/// writes ``outboxEvents`` and the record, and commits: all of it or none of it.
///
/// Each backend registers bodies typed for its connection — `(Database) throws` on SQLite,
/// `(PostgresConnection) async throws` on PostgreSQL — through its own `ctx.transaction` overload.
/// A body typed for another backend's connection fails the attempt with a ``TerminalError``.
@_spi(EddaStores) public final class StepTransaction: Sendable {
    /// A body, erased to the connection type it was registered for.
    private enum Work: Sendable {
        case blocking(@Sendable (Any) throws -> Void)
        case suspending(@Sendable (Any) async throws -> Void)
    }

    /// How a nested `ctx.transaction` runs its body at once, in a savepoint of the open transaction.
    private enum Savepoint {
        case blocking((() throws -> Void) throws -> Void)
        case suspending(@Sendable (@Sendable () async throws -> Void) async throws -> Void)
    }

    /// The store's connection while a `run` method runs. Only used by the task that runs the bodies,
    /// during that call.
    private struct ActiveSession: @unchecked Sendable {
        let value: Any
        let savepoint: Savepoint
        /// Who runs the bodies: only it may reach the connection while they run.
        let runner: Caller
    }

    /// The code asking: a blocking store runs the bodies on one thread (its writer queue), an async
    /// one in one task. Another task or thread asking while they run would share the connection
    /// with the commit, so it is refused.
    private struct Caller: Equatable {
        let task: Int?
        let thread: UInt

        static var current: Caller {
            Caller(task: withUnsafeCurrentTask { $0?.hashValue }, thread: UInt(bitPattern: Int(bitPattern: pthread_self())))
        }

        /// Whether `self` may use the connection `runner` runs the bodies on.
        func mayJoin(_ runner: Caller, blocking: Bool) -> Bool {
            blocking ? thread == runner.thread : task != nil && task == runner.task
        }
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
    /// the bodies ran: they may enqueue more.
    public var outboxEvents: [CloudEvent] {
        state.withLock { $0.events }
    }

    /// Runs the step's transaction bodies, in order, on a store connection that only blocking code
    /// can use (a GRDB `Database`).
    ///
    /// - Parameters:
    ///   - session: The store's connection, inside the write transaction that will hold the record.
    ///   - savepoint: Runs a closure inside a savepoint of that transaction: a nested
    ///     `ctx.transaction` uses it, so its writes roll back alone if it throws.
    /// - Throws: The first error a body throws (a body registered with `async` work included: this
    ///   connection cannot run it). The caller rolls back everything the bodies wrote.
    public func run<Session>(session: Session, savepoint: @escaping (() throws -> Void) throws -> Void) throws {
        let work = begin(ActiveSession(value: session, savepoint: .blocking(savepoint), runner: .current))
        defer { end() }
        do {
            for body in work {
                switch body {
                case .blocking(let body):
                    try body(session)
                case .suspending:
                    throw TerminalError(
                        "ctx.transaction was given an async body, but this store's session (\(Session.self)) runs blocking work only."
                    )
                }
            }
        } catch {
            state.withLock { $0.bodyFailure = error }
            throw error
        }
    }

    /// Runs the step's transaction bodies, in order, on an async store connection (a
    /// `PostgresConnection`), then `attempt` with the transaction still open.
    ///
    /// While this runs, `ctx.transaction` runs its body at once (in a savepoint), `ctx.session`
    /// returns `session` and `ctx.inTransaction` is `true`: `attempt` is how a whole activity body
    /// runs inside the step's transaction.
    ///
    /// - Parameters:
    ///   - session: The store's connection, inside the write transaction that will hold the record.
    ///   - savepoint: Runs a closure inside a savepoint of that transaction.
    ///   - attempt: More work inside the transaction, after the bodies; its result is returned.
    /// - Throws: The first error a body or `attempt` throws. The caller rolls back everything.
    public func run<Session: Sendable, Result: Sendable>(
        session: Session,
        savepoint: @escaping @Sendable (@Sendable () async throws -> Void) async throws -> Void,
        then attempt: @Sendable () async throws -> Result
    ) async throws -> Result {
        let work = begin(ActiveSession(value: session, savepoint: .suspending(savepoint), runner: .current))
        defer { end() }
        do {
            for body in work {
                switch body {
                case .blocking(let body): try body(session)
                case .suspending(let body): try await body(session)
                }
            }
            return try await attempt()
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

    /// The error a body (or a whole-body attempt) threw while the store ran it, or `nil`: when set,
    /// the attempt failed, not the store; a store rethrows it unchanged.
    public var bodyFailure: (any Error)? {
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

    private func begin(_ session: ActiveSession) -> [Work] {
        state.withLock { state in
            state.active = session
            return state.work
        }
    }

    /// The transaction is over: later calls (from a task that outlived the body) are refused.
    private func end() {
        state.withLock { state in
            state.active = nil
            state.sealed = true
        }
    }

    /// Adds a blocking body, or runs it at once in a savepoint when the transaction is open.
    func add<Session>(_ body: @escaping @Sendable (Session) throws -> Void, stepID: String) throws {
        let typed: @Sendable (Any) throws -> Void = { session in try body(Self.cast(session, to: Session.self)) }
        guard let (active, marks) = try openSessionOrQueue(.blocking(typed), stepID: stepID) else { return }
        switch active.savepoint {
        case .blocking(let savepoint):
            try undoingOnFailure(marks) { try savepoint { try typed(active.value) } }
        case .suspending:
            throw TerminalError(
                "A blocking ctx.transaction body was nested in an async one; this store's session (\(type(of: active.value))) needs `await`."
            )
        }
    }

    /// Adds an async body, or runs it at once in a savepoint when the transaction is open.
    func add<Session: Sendable>(_ body: @escaping @Sendable (Session) async throws -> Void, stepID: String) async throws {
        let typed: @Sendable (Any) async throws -> Void = { session in try await body(Self.cast(session, to: Session.self)) }
        guard let (active, marks) = try openSessionOrQueue(.suspending(typed), stepID: stepID) else { return }
        switch active.savepoint {
        case .suspending(let savepoint):
            let session = active.value as? Session
            guard let session else { throw Self.mismatch(Session.self, active.value) }
            try await undoingOnFailure(marks) { try await savepoint { try await body(session) } }
        case .blocking:
            throw TerminalError("ctx.transaction was given an async body, but this store's session (\(type(of: active.value))) runs blocking work only.")
        }
    }

    /// The open session and how many events and callbacks there were, or `nil` once `work` is queued.
    private func openSessionOrQueue(_ work: Work, stepID: String) throws -> (ActiveSession, (events: Int, callbacks: Int))? {
        let caller = Caller.current
        return try state.withLock { state in
            if let active = state.active {
                try Self.checkJoin(caller, active, stepID: stepID, what: "ctx.transaction")
                return (active, (state.events.count, state.afterCommit.count))
            }
            guard !state.sealed else { throw Self.sealedError(stepID: stepID, what: "ctx.transaction") }
            state.work.append(work)
            return nil
        }
    }

    /// Runs a nested body; if it throws, the savepoint undid its writes, and its events and callbacks go with them.
    private func undoingOnFailure<T>(_ marks: (events: Int, callbacks: Int), _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            dropAdded(since: marks)
            throw error
        }
    }

    private func undoingOnFailure<T>(_ marks: (events: Int, callbacks: Int), _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            dropAdded(since: marks)
            throw error
        }
    }

    private func dropAdded(since marks: (events: Int, callbacks: Int)) {
        state.withLock { state in
            state.events.removeSubrange(marks.events...)
            state.afterCommit.removeSubrange(marks.callbacks...)
        }
    }

    private static func cast<Session>(_ session: Any, to: Session.Type) throws -> Session {
        guard let typed = session as? Session else { throw mismatch(Session.self, session) }
        return typed
    }

    private static func mismatch<Session>(_ wanted: Session.Type, _ session: Any) -> TerminalError {
        TerminalError("ctx.transaction asked for a \(wanted), but this store's session is a \(type(of: session)).")
    }

    func enqueue(_ event: CloudEvent, stepID: String) throws {
        let caller = Caller.current
        try state.withLock { state in
            guard state.active != nil || !state.sealed else { throw Self.sealedError(stepID: stepID, what: "ctx.enqueue") }
            if let active = state.active { try Self.checkJoin(caller, active, stepID: stepID, what: "ctx.enqueue") }
            state.events.append(event)
        }
    }

    func afterCommit(_ callback: @escaping @Sendable () async -> Void, stepID: String) throws {
        let caller = Caller.current
        try state.withLock { state in
            guard !state.sealed || state.active != nil else { throw Self.sealedError(stepID: stepID, what: "ctx.afterCommit") }
            if let active = state.active { try Self.checkJoin(caller, active, stepID: stepID, what: "ctx.afterCommit") }
            state.afterCommit.append(callback)
        }
    }

    /// The open connection, for the code running the bodies; `nil` for anyone else.
    var activeSession: Any? {
        let caller = Caller.current
        return state.withLock { state in
            guard let active = state.active, (try? Self.checkJoin(caller, active, stepID: "", what: "")) != nil else { return nil }
            return active.value
        }
    }

    /// Refuses a caller other than the one running the bodies: it would use the connection while
    /// the commit does (and what it added could miss the commit).
    private static func checkJoin(_ caller: Caller, _ active: ActiveSession, stepID: String, what: String) throws {
        let blocking = if case .blocking = active.savepoint { true } else { false }
        guard caller.mayJoin(active.runner, blocking: blocking) else {
            throw EngineError(
                .transactionClosed,
                "\(what) was called from another task or thread while step '\(stepID)' commits. Call it from the activity's body "
                    + "(or a ctx.transaction body), and await the tasks you start before the body returns.",
                stepID: stepID
            )
        }
    }

    private static func sealedError(stepID: String, what: String) -> EngineError {
        EngineError(
            .transactionClosed,
            "\(what) was called after step '\(stepID)' returned. Call it from the activity's body, before it returns.",
            stepID: stepID
        )
    }
}
