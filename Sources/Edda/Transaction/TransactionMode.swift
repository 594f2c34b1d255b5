/// Where an activity's body runs relative to the transaction that records its result.
///
/// ```swift
/// import EddaPostgres
///
/// // The seed's "automatically transactional" activity: every query of the body commits with the
/// // step's record, or none does.
/// let moveFunds = Activity("move_funds", transaction: .wholeBody) { (ctx, transfer: Transfer) -> Bool in
///     let conn = try ctx.session(as: PostgresConnection.self)
///     try await conn.query("UPDATE accounts SET balance = balance - \(transfer.amount) WHERE id = \(transfer.from)", logger: ctx.logger)
///     try await conn.query("UPDATE accounts SET balance = balance + \(transfer.amount) WHERE id = \(transfer.to)", logger: ctx.logger)
///     return true
/// }
/// ```
public enum TransactionMode: Sendable, Hashable {
    /// The default. The body runs outside any transaction, so it can await the network for minutes
    /// while holding nothing; the work it gives `ctx.transaction` runs when it returns, in the
    /// transaction that records its result.
    case atCommit

    /// The whole body runs inside the step's transaction, on one of the store's connections: its
    /// queries (through `ctx.session`, or `ctx.transaction`, which then runs at once in a savepoint)
    /// see each other and commit with the step's record, or roll back with a failed attempt.
    ///
    /// The trade-off: the connection, and the locks the queries take, are held for as long as the
    /// body runs, network calls included. Keep such bodies short, and size the store's pool for
    /// them. A store that cannot do this (SQLite, whose single write lock every workflow shares)
    /// fails the step with a ``TerminalError`` saying so.
    case wholeBody
}
