extension ActivityContext {
    /// Adds blocking database work to the transaction that records this step: what a backend's
    /// typed `ctx.transaction` overload calls (`EddaSQLite`'s, for GRDB's `Database`).
    ///
    /// The body runs **when the activity returns**, inside the same transaction that writes the
    /// step's history record; called while that transaction is open (from a running body, or from a
    /// whole-body transactional activity), it runs at once in a savepoint.
    package func addTransactionBody<Session>(_ body: @escaping @Sendable (Session) throws -> Void) throws {
        try stepTransaction.add(body, stepID: stepID)
    }

    /// Adds async database work to the transaction that records this step: what a backend's typed
    /// `ctx.transaction` overload calls (`EddaPostgres`'s, for PostgresNIO's `PostgresConnection`).
    package func addTransactionBody<Session: Sendable>(_ body: @escaping @Sendable (Session) async throws -> Void) async throws {
        try await stepTransaction.add(body, stepID: stepID)
    }

    /// Whether this code runs inside the step's transaction: `true` within a `ctx.transaction` body
    /// and in the body of an activity declared with ``TransactionMode/wholeBody``.
    public var inTransaction: Bool {
        stepTransaction.activeSession != nil
    }

    /// The store's connection, inside a `ctx.transaction` body (the seed's `ctx.session`).
    ///
    /// - Throws: ``EngineError/Code-swift.struct/noTransaction`` outside a transaction body, or if
    ///   the store's session is not a `Session`.
    public func session<Session>(as type: Session.Type = Session.self) throws -> Session {
        guard let session = stepTransaction.activeSession else {
            throw EngineError(
                .noTransaction,
                "ctx.session is only available inside a ctx.transaction { } body of step '\(stepID)'; "
                    + "move the database work into one, so it commits with the step's record.",
                instanceID: instanceID, stepID: stepID
            )
        }
        guard let typed = session as? Session else {
            throw EngineError(
                .noTransaction, "ctx.session asked for a \(Session.self), but this store's session is a \(Swift.type(of: session)).",
                instanceID: instanceID, stepID: stepID
            )
        }
        return typed
    }

    /// Puts an event in the transactional outbox: it is written in the transaction that records this
    /// step, so it exists if and only if the step's result does. An outbox relay (`OutboxRelay` in
    /// `EddaOutbox`) then delivers it, at least once.
    ///
    /// Call it from the activity's body or from a `ctx.transaction` body.
    ///
    /// - Throws: ``EngineError/Code-swift.struct/transactionClosed`` if called after the body returned.
    public func enqueue(_ event: CloudEvent) throws {
        var event = event
        // The step's trace context travels with the event (`traceparent`, as W3C tracers name it),
        // so that its consumer's spans join the trace.
        for (key, value) in observer?.currentTraceContext() ?? [:] {
            let name = Observer.extensionName(key)
            if !name.isEmpty, event.extensions[name] == nil { event.extensions[name] = value }
        }
        try stepTransaction.enqueue(event, stepID: stepID)
    }

    /// Runs `callback` once this step's record (and its transaction) has committed — never if the
    /// attempt fails or the commit does not happen.
    ///
    /// Use it for best-effort side effects that must not happen for uncommitted work: warming a
    /// cache, waking a waiter. It is not durable: a crash right after the commit skips it. For
    /// effects that must happen, ``enqueue(_:)`` an event instead.
    ///
    /// - Throws: ``EngineError/Code-swift.struct/transactionClosed`` if called after the body returned.
    public func afterCommit(_ callback: @escaping @Sendable () async -> Void) throws {
        try stepTransaction.afterCommit(callback, stepID: stepID)
    }
}
