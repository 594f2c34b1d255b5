import Edda
import EddaPostgres
import EddaTestSupport
import Foundation
import InMemoryLogging
import Logging
import PostgresNIO
import Testing

/// A store that cannot reach its server fails its start quickly, saying why.
@Suite("PostgreSQL: start-up failures", .timeLimit(.minutes(1)))
struct PostgresStartupTests {
    func startupError(_ url: String, timeout: Duration = .seconds(1)) async throws -> StoreError {
        var configuration = try PostgresStore.Configuration(url: url)
        configuration.startupTimeout = timeout
        let store = try PostgresStore(configuration: configuration, logger: PostgresTestDatabase.quiet)
        let clock = ContinuousClock()
        let started = clock.now
        let error = try await #require(throws: StoreError.self) { try await store.run() }
        #expect(clock.now - started < timeout + .seconds(20), "it fails within the startup timeout, not after the pool's own minute")
        await #expect(throws: StoreError.self, "operations fail with the same reason") { try await store.ready() }
        return error
    }

    @Test func aServerThatIsNotThereIsNamedWithTheRefusal() async throws {
        let error = try await startupError("postgres://edda:secret@127.0.0.1:1/orders?sslmode=disable")
        #expect(error.message.contains("Cannot reach PostgreSQL at 127.0.0.1:1 as 'edda', database 'orders'"))
        #expect("\(error)".lowercased().contains("refused"), "the cause says what happened: \(error)")
        #expect(!"\(error)".contains("secret"))
    }

    /// Runs a store on `schema` and returns how its start ended.
    func start(on schema: String) async throws -> (any Error)? {
        let store = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
        return await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask {
                do { try await store.run() } catch { return error }
                return nil
            }
            group.addTask {
                do { try await store.ready() } catch { return error }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test(.enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"))
    func aSchemaANewerEddaMigratedIsRefusedAndLeftAsItIs() async throws {
        let schema = PostgresTestDatabase.freshSchema()
        try await PostgresTestDatabase.withStore(schema: schema) { store in
            try await store.client.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \"\(schema)\".edda_schema_migrations (version, name, applied_at) VALUES (999, 'from a newer Edda', 0)")
            )
            // Before, a worker started on it silently.
            let error = try #require(try await start(on: schema) as? StoreError)
            #expect(error.code == .schemaTooNew, "\(error)")
            #expect(error.message.contains("newer version of Edda"))
        }
    }

    @Test(.enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"))
    func anotherApplicationsSchemaGetsNoEddaTables() async throws {
        let schema = PostgresTestDatabase.freshSchema()
        try await PostgresTestDatabase.withStore(schema: PostgresTestDatabase.freshSchema()) { admin in
            try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \"\(schema)\""))
            try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \"\(schema)\".customers (id INT PRIMARY KEY)"))
            let error = try #require(try await start(on: schema) as? StoreError)
            #expect(error.code == .notAnEddaDatabase, "\(error)")
            #expect(error.message.contains("customers") && error.message.contains("?schema="))
            var tables: [String] = []
            for try await name in try await admin.client.query(
                PostgresQuery(unsafeSQL: "SELECT tablename FROM pg_tables WHERE schemaname = '\(schema)' ORDER BY tablename")
            ).decode(String.self) { tables.append(name) }
            #expect(tables == ["customers"], "nothing of Edda's was added")
            try await PostgresTestDatabase.dropSchema(schema, using: admin)
        }
    }

    /// What waiting cannot heal: a database or a role that does not exist.
    enum Missing: String, CaseIterable, Sendable { case database, role }

    @Test(.enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), arguments: Missing.allCases)
    func aMissingDatabaseOrRoleFailsAtOnceWithTheServersOwnMessage(_ missing: Missing) async throws {
        let url = try #require(PostgresTestDatabase.url)
        var components = try #require(URLComponents(string: url))
        let name = "no_such_\(missing.rawValue)_\(UUID().uuidString.prefix(6).lowercased())"
        switch missing {
        case .database: components.path = "/" + name
        case .role: components.user = name
        }
        // With a 60 s start-up timeout: it does not heal by waiting.
        let started = ContinuousClock.now
        let error = try await startupError(try #require(components.string), timeout: .seconds(60))
        #expect(ContinuousClock.now - started < .seconds(30), "it failed at once, not after the start-up timeout")
        #expect("\(error)".contains("does not exist"), "\(error)")
        #expect(error.message.contains("waiting will not change that"), "\(error)")
    }

    @Test(.enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"))
    func aStoreStartsWithoutPostgresNIOsWarningOfAPoolNotRunning() async throws {
        let log = InMemoryLogHandler()
        let schema = PostgresTestDatabase.freshSchema()
        let store = try PostgresStore(
            configuration: PostgresTestDatabase.configuration(schema: schema), logger: Logger(label: "edda.postgres.test") { _ in log }
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            try await store.ready()
            try await PostgresTestDatabase.dropSchema(schema, using: store)
            group.cancelAll()
        }
        let warnings = log.entries.filter { $0.level >= .warning }.map { "\($0.message)" }
        #expect(warnings.isEmpty, "\(warnings)")
    }

    @Test func aURLWithoutSchemeIsNamedWithItsPasswordHidden() throws {
        let error = try #require(throws: StoreError.self) { try PostgresStore.Configuration(url: "edda:secret@db.internal:5432/orders") }
        #expect(error.message.contains("'edda:***@db.internal:5432/orders' is not a PostgreSQL URL"), "\(error.message)")
        #expect(!"\(error)".contains("secret"))
    }
}
