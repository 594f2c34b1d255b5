import Edda
import EddaPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

/// The server the PostgreSQL tests run against: `EDDA_POSTGRES_URL`, which `.ci/run` sets after
/// starting a throw-away server. Without it (a developer's machine), these tests are skipped;
/// `EDDA_REQUIRE_POSTGRES=1` (set by `.ci/run`) turns a missing URL into a failure.
enum PostgresTestDatabase {
    static let url = ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"]
    static let isAvailable = url != nil

    /// A configuration on a schema of its own, so tests running in parallel never see each other.
    static func configuration(schema: String = "edda_test_\(UUID().uuidString.prefix(8).lowercased())") throws -> PostgresStore.Configuration {
        var configuration = try PostgresStore.Configuration(url: url ?? "postgres://localhost/none")
        configuration.schema = schema
        configuration.maximumConnections = 8
        return configuration
    }

    static let quiet = Logger(label: "edda.postgres.test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with a running store on a fresh schema, dropped afterwards.
    static func withStore<T: Sendable>(
        schema: String = "edda_test_\(UUID().uuidString.prefix(8).lowercased())",
        _ body: @Sendable (PostgresStore) async throws -> T
    ) async throws -> T {
        let store = try PostgresStore(configuration: configuration(schema: schema), logger: quiet)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await store.run()
                return nil
            }
            do {
                try await store.ready()
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

    static func dropSchema(_ schema: String, using store: PostgresStore) async throws {
        try await store.client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"))
    }
}

@Suite("PostgreSQL is there in CI")
struct PostgresAvailabilityTests {
    @Test func aServerIsConfiguredWhenRequired() {
        if ProcessInfo.processInfo.environment["EDDA_REQUIRE_POSTGRES"] == "1" {
            #expect(PostgresTestDatabase.url != nil, "EDDA_REQUIRE_POSTGRES=1 but EDDA_POSTGRES_URL is not set")
        }
        #expect(PostgresTestDatabase.isAvailable == (PostgresTestDatabase.url != nil))
    }

    @Test func urlsAreReadAndBadOnesExplained() throws {
        let configuration = try PostgresStore.Configuration(url: "postgres://edda:s3cret@db.internal:6543/orders?schema=edda&sslmode=disable")
        #expect(configuration.client.host == "db.internal")
        #expect(configuration.client.port == 6543)
        #expect(configuration.client.username == "edda")
        #expect(configuration.client.password == "s3cret")
        #expect(configuration.client.database == "orders")
        #expect(configuration.schema == "edda")
        let notPostgres = #expect(throws: StoreError.self) { try PostgresStore.Configuration(url: "mysql://root:hunter2@db/x") }
        #expect(notPostgres?.message.contains("postgres://") == true)
        #expect(notPostgres?.message.contains("hunter2") == false, "the password is not repeated")
        #expect(throws: StoreError.self) { try PostgresStore.Configuration(url: "postgres://db/x?sslmode=sometimes") }
        let unparsable = #expect(throws: StoreError.self) { try PostgresStore.Configuration(url: "postgres://edda:pa#ss/word@db:5432/x") }
        #expect(unparsable?.message.contains("pa#ss") == false, "a password the URL parser chokes on is not repeated either")
        var one = configuration
        one.maximumConnections = 1
        #expect(throws: StoreError.self) { try PostgresStore(configuration: one) }
        var long = configuration
        long.schema = String(repeating: "s", count: 59)
        #expect(throws: StoreError.self) { try PostgresStore(configuration: long) }
        var bad = configuration
        bad.schema = "edda; DROP TABLE x"
        #expect(throws: StoreError.self) { try PostgresStore(configuration: bad) }
    }
}
