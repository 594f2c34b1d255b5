@_spi(EddaStores) public import Edda
public import PostgresNIO

extension ActivityContext {
    /// Adds queries on the store's `PostgresConnection` to the transaction that records this step:
    /// they commit with the step's result, or not at all.
    ///
    /// ```swift
    /// let reserve = Activity("reserve_stock") { (ctx, sku: String, quantity: Int) -> Bool in
    ///     let available = try await warehouse.check(sku)          // network: no connection is held
    ///     try await ctx.transaction { conn in                      // commits with the step's record
    ///         try await conn.query("UPDATE stock SET reserved = reserved + \(quantity) WHERE sku = \(sku)", logger: ctx.logger)
    ///     }
    ///     return available >= quantity
    /// }
    /// ```
    ///
    /// The body runs **when the activity returns**, on one of the store's connections, inside the
    /// transaction that writes the step's history record (after the instance's lease is checked).
    /// If it throws, nothing of the step is written and the attempt fails, to be retried like any
    /// other (throw ``Edda/TerminalError`` to stop). Called inside a running body, or in an activity
    /// declared with ``Edda/TransactionMode/wholeBody``, it runs at once in a savepoint: if it throws,
    /// only its own queries are undone.
    ///
    /// Never run `COMMIT`, `ROLLBACK` or `BEGIN` in a body; nest `transaction` calls instead. Do not
    /// call it from several tasks at once: the bodies share one connection.
    ///
    /// - Throws: ``Edda/EngineError`` with code `transactionClosed` if called after the activity
    ///   returned; a nested body's error.
    public func transaction(_ body: @escaping @Sendable (PostgresConnection) async throws -> Void) async throws {
        try await addTransactionBody(body)
    }

    /// The store's connection inside the step's transaction: in a ``transaction(_:)`` body, or
    /// anywhere in the body of a ``Edda/TransactionMode/wholeBody`` activity (the seed's `ctx.session`).
    ///
    /// - Throws: ``Edda/EngineError`` with code `noTransaction` outside the step's transaction.
    public var connection: PostgresConnection {
        get throws { try session(as: PostgresConnection.self) }
    }
}
