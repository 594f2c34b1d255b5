import Edda
public import EddaPostgres
import Foundation
public import Logging
import PostgresNIO
public import Testing

/// The server the PostgreSQL tests run against: `EDDA_POSTGRES_URL`, which `.ci/run` sets after
/// starting a throw-away server. Without it (a developer's machine), these tests are skipped;
/// `EDDA_REQUIRE_POSTGRES=1` (set by `.ci/run`) turns a missing URL into a failure.
public enum PostgresTestDatabase {
    public static let url = ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"]
    public static let isAvailable = url != nil
    /// `EDDA_REQUIRE_POSTGRES=1`: a missing server fails the tests that need it instead of skipping them.
    public static let isRequired = ProcessInfo.processInfo.environment["EDDA_REQUIRE_POSTGRES"] == "1"

    /// A schema name of its own for one test.
    public static func freshSchema() -> String { "edda_test_\(UUID().uuidString.prefix(8).lowercased())" }

    /// A configuration on a schema of its own, so tests running in parallel never see each other.
    public static func configuration(schema: String = freshSchema(), maximumConnections: Int = 8) throws -> PostgresStore.Configuration {
        var configuration = try PostgresStore.Configuration(url: url ?? "postgres://localhost/none")
        configuration.schema = schema
        configuration.maximumConnections = maximumConnections
        // The suite starts about a hundred stores on fresh schemas at once, and their migrations take
        // the server-wide lock in turn: on a loaded two-core machine the last ones wait past 30 s.
        configuration.startupTimeout = .seconds(120)
        return configuration
    }

    public static let quiet = Logger(label: "edda.postgres.test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// For a test (or one case of a parameterized test) that needs the server: returns when
    /// `EDDA_POSTGRES_URL` is set. Otherwise it records a warning (shown as `⚠`, not a failure) and
    /// cancels the current test case — Swift Testing 6.3 prints a cancelled case as passed, so the
    /// warning is what makes the skip visible — or, under `EDDA_REQUIRE_POSTGRES=1`, records a
    /// failure and throws.
    public static func requireServer(sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard !isAvailable else { return }
        if isRequired {
            Issue.record("EDDA_REQUIRE_POSTGRES=1 but EDDA_POSTGRES_URL is not set", sourceLocation: sourceLocation)
            throw StoreError(.database, "EDDA_POSTGRES_URL is not set")
        }
        Issue.record("PostgreSQL case skipped: set EDDA_POSTGRES_URL to run it", severity: .warning, sourceLocation: sourceLocation)
        try Test.cancel("PostgreSQL case skipped: set EDDA_POSTGRES_URL to run it", sourceLocation: sourceLocation)
    }

    /// Runs `body` with a running store on a fresh schema, dropped afterwards.
    public static func withStore<T: Sendable>(
        schema: String = freshSchema(),
        maximumConnections: Int = 8,
        _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        let store = try PostgresStore(configuration: configuration(schema: schema, maximumConnections: maximumConnections), logger: quiet)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            do {
                try await store.ready()
            } catch {
                // A store that never started has stopped its connections: nothing to drop through it
                // (a query on it would wait forever), and perhaps nothing was created.
                group.cancelAll()
                throw error
            }
            do {
                let result = try await body(store)
                try await dropSchema(schema, using: store)
                group.cancelAll()
                return result
            } catch {
                try? await dropSchema(schema, using: store)
                group.cancelAll()
                throw error
            }
        }
    }

    public static func dropSchema(_ schema: String, using store: PostgresStore) async throws {
        try await store.client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"))
    }
}
