@_spi(EddaStores) public import Edda
public import GRDB

extension ActivityContext {
    /// Adds writes on the store's GRDB `Database` to the transaction that records this step: they
    /// commit with the step's result, or not at all. See ``Edda/ActivityContext/transaction(_:)``.
    ///
    /// ```swift
    /// let reserve = Activity("reserve_stock") { (ctx, sku: String, quantity: Int) -> Bool in
    ///     let available = try await warehouse.check(sku)      // network: no lock is held
    ///     try ctx.transaction { db in                          // commits with the step's record
    ///         try db.execute(sql: "UPDATE stock SET reserved = reserved + ? WHERE sku = ?", arguments: [quantity, sku])
    ///     }
    ///     return available >= quantity
    /// }
    /// ```
    public func transaction(_ body: @escaping @Sendable (Database) throws -> Void) throws {
        try addTransactionBody(body)
    }

    /// The store's GRDB `Database`, inside a ``transaction(_:)`` body: the seed's `ctx.session`.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/noTransaction`` outside one.
    public var session: Database {
        get throws { try session(as: Database.self) }
    }
}
