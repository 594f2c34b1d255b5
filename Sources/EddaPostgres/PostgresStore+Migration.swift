@_spi(EddaStores) import Edda
import Logging
import NIOSSL
import PostgresNIO

/// Bringing the schema up to date at start-up: within the startup timeout, one migrator at a time
/// across every process on the database, with the reason when the server cannot be reached.
extension PostgresStore {
    /// Migrates, failing after ``Configuration-swift.struct/startupTimeout`` with the reason the
    /// server could not be reached (the pool alone only reports that it gave up).
    func migrateWithinStartupTimeout() async throws {
        do {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await self.migrate()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: self.configuration.startupTimeout)
                    throw StartupTimedOut()
                }
                group.addTask {
                    // What waiting cannot heal — no such database or role, a wrong password — fails
                    // the start at once (the pool would retry it until the timeout).
                    if let error = await self.probeConnection(), Self.cannotHeal(error) { throw StartupCannotHeal(underlying: error) }
                    return false
                }
                defer { group.cancelAll() }
                while let migrated = try await group.next() {
                    if migrated { return }
                }
            }
        } catch let error as StartupCannotHeal {
            throw StoreError(
                .database,
                "PostgreSQL at \(target) refused '\(configuration.client.username)'"
                    + (configuration.client.database.map { " for database '\($0)'" } ?? "")
                    + ", and waiting will not change that. Check the URL's database name, user and password.",
                cause: ServerError(error.underlying)
            )
        } catch let error as StoreError where !isConnectionFailure(error.cause) {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let reason = await probeConnection()
            if reason == nil, configuration.probe != nil, error is StartupTimedOut {
                // The server answers: it is the schema's migration that took too long.
                throw StoreError(
                    .migrationFailed,
                    "PostgreSQL at \(target) answers, but bringing Edda's schema \(tables.schema) up to date took longer than the start-up "
                        + "timeout (\(configuration.startupTimeout)): another process may hold the migration lock, or an index is being "
                        + "built on a large table. Raise startupTimeout, or run `edda migrate` first.",
                    cause: error
                )
            }
            throw StoreError(
                .database,
                "Cannot reach PostgreSQL at \(target) as '\(configuration.client.username)'"
                    + (configuration.client.database.map { ", database '\($0)'" } ?? "")
                    + " within \(configuration.startupTimeout). Check that the server runs and accepts this user, and the URL.",
                cause: reason.map(ServerError.init) ?? (error as? StoreError)?.cause ?? error
            )
        }
    }

    /// The server, as messages name it.
    private var target: String {
        "\(configuration.client.host ?? configuration.client.unixSocketPath ?? "?"):\(configuration.client.port ?? 5432)"
    }

    /// Whether a failure to connect is the server's answer that no retry changes: the database or
    /// the role does not exist, or the password is wrong.
    static func cannotHeal(_ error: any Error) -> Bool {
        guard let state = ServerError(error).sqlState else { return false }
        return state == "3D000" || state == "28000" || state == "28P01"
    }

    struct StartupCannotHeal: Error {
        let underlying: any Error
    }

    /// Whether an error says the pool could not connect, rather than what a query did.
    private func isConnectionFailure(_ error: (any Error)?) -> Bool {
        guard let error else { return false }
        let underlying = (error as? ServerError)?.underlying ?? error
        if let error = underlying as? PSQLError { return error.serverInfo == nil }
        return "\(type(of: underlying))".contains("ConnectionPoolError")
    }

    /// Opens one connection of its own, to learn why the pool cannot: the error, or `nil` if it
    /// connects (or how to connect is not known: a configuration made from a `PostgresClient` one).
    private func probeConnection() async -> (any Error)? {
        guard let probe = configuration.probe else { return nil }
        do {
            let tls: PostgresConnection.Configuration.TLS
            switch probe.tls {
            case "disable": tls = .disable
            case "require", "verify-ca", "verify-full": tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            default: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            let connection = try await PostgresConnection.connect(
                configuration: PostgresConnection.Configuration(
                    host: probe.host, port: probe.port, username: configuration.client.username,
                    password: configuration.client.password, database: configuration.client.database, tls: tls
                ),
                id: 0,
                logger: logger
            )
            try? await connection.close()
            return nil
        } catch {
            return error
        }
    }

    /// Brings the schema up to date.
    func migrate() async throws {
        let t = tables
        let migrations = Self.migrations(t)
        guard configuration.migratesSchema else {
            let applied: Set<Int>
            do {
                applied = try await appliedVersions()
            } catch where ServerError(error).sqlState == "42P01" {
                applied = []   // no migrations table: not an Edda schema (yet)
            } catch {
                // Kept as the cause: a connection failure is still told apart by the caller.
                throw StoreError(.migrationFailed, "Cannot read the schema version of \(t.schema).", cause: ServerError(error))
            }
            let known = Set(migrations.map(\.version))
            if !applied.isSubset(of: known) { throw tooNew() }
            guard applied == known else {
                throw StoreError(
                    .migrationFailed,
                    applied.isEmpty
                        ? "The schema \(t.schema) holds no Edda tables. Nothing was changed; check the URL's database and schema, or run `edda migrate`."
                        : "The schema \(t.schema) is older than this version of Edda reads. Nothing was changed; run `edda migrate` (or start the app once)."
                )
            }
            return
        }
        let known = Set(migrations.map(\.version))
        if try await hasMigrationsTable() {
            if let applied = try? await appliedVersions() {
                // A newer Edda's schema is not this version's to run on.
                if !applied.isSubset(of: known) { throw tooNew() }
                // Up to date already: touch nothing, so a role with only read and write rights on a
                // schema a DBA prepared can start (CREATE … IF NOT EXISTS still needs CREATE rights).
                if known.isSubset(of: applied) { return }
            }
        } else if let tables = try await otherTables(), !tables.isEmpty, try await !hasMigrationsTable() {
            // No Edda tables, but others: another application's schema. Never add Edda's next to them.
            // (Asked again after listing them: another process may have migrated the schema in
            // between, and then its tables are Edda's.)
            throw StoreError(
                .notAnEddaDatabase,
                "The schema \(t.schema) holds other tables (\(tables.prefix(3).joined(separator: ", "))\(tables.count > 3 ? ", …" : "")) "
                    + "and none of Edda's: it is another application's. Nothing was changed; give Edda a schema of its own "
                    + "(`?schema=edda` in the URL, or Configuration.schema)."
            )
        }
        do {
            let block = PostgresQuery(unsafeSQL: Self.migrationBlock(migrations, tables: t, lockKey: Self.migrationLockKey))
            // Waiting for another migrator, or building an index on a large table, may take longer
            // than Edda's statement timeout: it is off for the migration. One statement, in a
            // transaction of its own, does the rest under the server-wide lock, which its end
            // releases: only the server's work holds it. When the lock was taken first and the
            // schema, the table and the versions were read in statements of their own, then
            // committed, a client starved of CPU held it for seconds per schema, and the test suite's
            // last stores (a hundred fresh schemas start at once) waited past their startup timeout.
            if configuration.sendsSessionSettings {
                try await client.withConnection { connection in
                    try await connection.query("SET statement_timeout = 0", logger: logger)
                    do {
                        try await connection.query(block, logger: logger)
                    } catch {
                        _ = try? await connection.query("RESET statement_timeout", logger: logger)
                        throw error
                    }
                    try await connection.query("RESET statement_timeout", logger: logger)
                }
            } else {
                // Behind a pooler that gives each transaction any server connection, a session
                // setting may not reach the next statement: both in one transaction.
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query("SET LOCAL statement_timeout = 0", logger: logger)
                    try await connection.query(block, logger: logger)
                }
            }
            logger.debug("schema up to date", metadata: ["edda.postgres.schema": "\(t.schema)"])
        } catch {
            let own = (error as? StoreError) ?? ((error as? PostgresTransactionError)?.closureError as? StoreError)
            if let own, own.code == .schemaTooNew { throw own }
            if ServerError(error).message?.contains(Self.tooNewMarker) == true { throw tooNew() }
            throw StoreError(.migrationFailed, "Cannot bring Edda's schema \(t.schema) up to date. Nothing was changed.", cause: ServerError(error))
        }
    }

    /// Whether the schema has Edda's migrations table (whether or not this role may read it).
    private func hasMigrationsTable() async throws -> Bool {
        var exists = false
        do {
            let rows = try await client.query("SELECT to_regclass(\(tables.migrations)) IS NOT NULL", logger: logger)
            for try await value in rows.decode(Bool.self) { exists = value }
        } catch {
            throw StoreError(.migrationFailed, "Cannot read the schema version of \(tables.schema).", cause: ServerError(error))
        }
        return exists
    }

    /// The tables in the schema (none when it does not exist), or `nil` if they cannot be listed.
    private func otherTables() async throws -> [String]? {
        var names: [String] = []
        do {
            let rows = try await client.query(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = \(configuration.schema) ORDER BY tablename LIMIT 10",
                logger: logger
            )
            for try await name in rows.decode(String.self) { names.append(name) }
        } catch {
            return nil
        }
        return names
    }

    private func tooNew() -> StoreError {
        StoreError(
            .schemaTooNew,
            "The schema \(tables.schema) was written by a newer version of Edda than this one. Nothing was changed; use that version."
        )
    }

    /// The versions recorded as applied; throws if the migrations table does not exist.
    private func appliedVersions() async throws -> Set<Int> {
        var applied: Set<Int> = []
        for try await version in try await client.query(PostgresQuery(unsafeSQL: "SELECT version FROM \(tables.migrations)"), logger: logger)
            .decode(Int.self)
        {
            applied.insert(version)
        }
        return applied
    }

    /// Marks the error the migration block raises when the schema holds versions this Edda does not know.
    static let tooNewMarker = "edda: the schema was migrated by a newer version"

    /// One `DO` block that brings the schema up to date under the server-wide migration lock: it takes
    /// the lock, creates the schema and the migrations table if missing, refuses a schema with a
    /// version it does not know (raising ``tooNewMarker``), and applies each migration not recorded,
    /// recording it — all in the server, in one round trip.
    static func migrationBlock(_ migrations: [(version: Int, name: String, statements: [String])], tables t: Tables, lockKey: Int64) -> String {
        let quote = "$edda_statement$"
        func execute(_ statement: String) -> String {
            precondition(!statement.contains(quote), "a migration statement contains \(quote)")
            return "EXECUTE \(quote)\(statement)\(quote);\n"
        }
        var body = "PERFORM pg_advisory_xact_lock(\(lockKey));\n"
        body += execute("CREATE SCHEMA IF NOT EXISTS \(t.schema)")
        body += execute("CREATE TABLE IF NOT EXISTS \(t.migrations) (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
        let known = migrations.map { String($0.version) }.joined(separator: ", ")
        body += """
            EXECUTE \(quote)SELECT EXISTS (SELECT 1 FROM \(t.migrations) WHERE version NOT IN (\(known)))\(quote) INTO newer;
            IF newer THEN RAISE EXCEPTION '\(tooNewMarker)'; END IF;\n
            """
        for migration in migrations {
            body += "EXECUTE \(quote)SELECT EXISTS (SELECT 1 FROM \(t.migrations) WHERE version = \(migration.version))\(quote) INTO applied;\n"
            body += "IF NOT applied THEN\n"
            for statement in migration.statements { body += execute(statement) }
            let name = migration.name.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''")
            body += execute("INSERT INTO \(t.migrations) (version, name, applied_at) VALUES (\(migration.version), '\(name)', \(nowMilliseconds))")
            body += "END IF;\n"
        }
        return "DO $edda_migrations$\nDECLARE newer boolean; applied boolean;\nBEGIN\n\(body)END\n$edda_migrations$"
    }

    struct StartupTimedOut: Error, CustomStringConvertible {
        var description: String { "no connection to the server within the startup timeout" }
    }

    /// The advisory lock key migrations take ("edda" in ASCII).
    static let migrationLockKey: Int64 = 0x6564_6461
}
