public import Edda
import EddaPostgres
import EddaSQLite
import GRDB
import Logging
import PostgresNIO

extension Backend {
    /// Runs `sql` (no parameters; Edda's tables by their bare names) on `store`'s database: how the
    /// retention tests age rows and look at what the `Store` API does not show.
    public static func execute(_ sql: String, in store: any Store) async throws {
        switch store {
        case let sqlite as SQLiteStore:
            try await sqlite.writer.write { db in try db.execute(sql: sql) }
        case let postgres as PostgresStore:
            try await postgres.client.withConnection { connection in
                try await connection.query(PostgresQuery(unsafeSQL: "SET search_path TO \"\(postgres.configuration.schema)\""), logger: quietLogger)
                try await connection.query(PostgresQuery(unsafeSQL: sql), logger: quietLogger)
                try await connection.query(PostgresQuery(unsafeSQL: "RESET search_path"), logger: quietLogger)
            }
        default:
            throw StoreError(.database, "No SQL for \(type(of: store)).")
        }
    }

    /// The single integer `sql` selects on `store`'s database (a count).
    public static func integer(_ sql: String, in store: any Store) async throws -> Int {
        switch store {
        case let sqlite as SQLiteStore:
            return try await sqlite.writer.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
        case let postgres as PostgresStore:
            return try await postgres.client.withConnection { connection in
                try await connection.query(PostgresQuery(unsafeSQL: "SET search_path TO \"\(postgres.configuration.schema)\""), logger: quietLogger)
                var value = 0
                for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: quietLogger).decode(Int64.self) {
                    value = Int(row)
                }
                try await connection.query(PostgresQuery(unsafeSQL: "RESET search_path"), logger: quietLogger)
                return value
            }
        default:
            throw StoreError(.database, "No SQL for \(type(of: store)).")
        }
    }

    /// The query plan of `sql` as text (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN).
    public static func plan(_ sql: String, in store: any Store) async throws -> String {
        switch store {
        case let sqlite as SQLiteStore:
            return try await sqlite.writer.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String? ?? "" }.joined(separator: "\n")
            }
        case let postgres as PostgresStore:
            return try await postgres.client.withConnection { connection in
                try await connection.query(PostgresQuery(unsafeSQL: "SET search_path TO \"\(postgres.configuration.schema)\""), logger: quietLogger)
                try await connection.query("SET enable_seqscan = off", logger: quietLogger)
                var lines: [String] = []
                for try await line in try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN " + sql), logger: quietLogger).decode(String.self) {
                    lines.append(line)
                }
                try await connection.query("RESET enable_seqscan", logger: quietLogger)
                try await connection.query(PostgresQuery(unsafeSQL: "RESET search_path"), logger: quietLogger)
                return lines.joined(separator: "\n")
            }
        default:
            throw StoreError(.database, "No SQL for \(type(of: store)).")
        }
    }

    private static var quietLogger: Logger { PostgresTestDatabase.quiet }
}
