extension ActivityContext {
    /// Adds database work to the transaction that records this step's result.
    ///
    /// `body` gets the store's own connection — a GRDB `Database` on `SQLiteStore` (which adds an
    /// overload typed for it) — and runs **when the activity returns**, inside the same transaction
    /// that writes its history record. Either the record and every write of `body` commit, or none
    /// does, even if the process is killed: this is the one place where "exactly once" is literal.
    ///
    /// ```swift
    /// let placeOrder = Activity("place_order") { (ctx, order: Order) -> Confirmation in
    ///     let quote = try await shipping.quote(order)        // network: no lock is held meanwhile
    ///     try ctx.transaction { (db: Database) in             // runs with the step's record
    ///         try db.execute(sql: "INSERT INTO orders (id, total) VALUES (?, ?)", arguments: [order.id, quote.total])
    ///     }
    ///     return Confirmation(orderID: order.id, shipping: quote.total)
    /// }
    /// ```
    ///
    /// Because the body runs at the end, the activity can await the network for minutes while other
    /// workflows keep committing: the write lock is held only while the bodies run. The flip side:
    /// the activity's code after this call does not see these writes yet.
    ///
    /// - Bodies run in the order they were added. Called from inside a body, `transaction` runs its
    ///   new body at once, in a savepoint: if it throws, only its own writes are undone.
    /// - If a body throws, everything the step would commit is rolled back and the attempt fails
    ///   with that error, to be retried like any other (throw ``TerminalError`` to stop).
    /// - A failed attempt, or a compensation that never ran, commits none of its bodies.
    ///
    /// Do not commit, roll back or begin transactions yourself in a body; nest `transaction` calls
    /// (or use savepoints) instead.
    ///
    /// - Parameter body: Synchronous database work. It gets the store's session; a `Session` type the
    ///   store does not use fails the attempt with a ``TerminalError``.
    /// - Throws: ``EngineError/Code-swift.struct/transactionClosed`` if called after the body returned
    ///   (from a task that outlived it); a nested body's error.
    public func transaction<Session>(_ body: @escaping @Sendable (Session) throws -> Void) throws {
        try addTransactionBody(body)
    }

    /// What ``transaction(_:)`` does; backends' typed overloads call it.
    package func addTransactionBody<Session>(_ body: @escaping @Sendable (Session) throws -> Void) throws {
        try stepTransaction.add(
            { session in
                guard let typed = session as? Session else {
                    throw TerminalError(
                        "ctx.transaction asked for a \(Session.self), but this store's session is a \(type(of: session))."
                    )
                }
                try body(typed)
            },
            stepID: stepID
        )
    }

    /// Whether this code runs inside the step's transaction: `true` within a ``transaction(_:)`` body.
    public var inTransaction: Bool {
        stepTransaction.activeSession != nil
    }

    /// The store's connection, inside a ``transaction(_:)`` body (the seed's `ctx.session`).
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
    /// Call it from the activity's body or from a ``transaction(_:)`` body.
    ///
    /// - Throws: ``EngineError/Code-swift.struct/transactionClosed`` if called after the body returned.
    public func enqueue(_ event: CloudEvent) throws {
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
