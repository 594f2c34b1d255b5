import Edda
import EddaPostgres
import EddaTestSupport
import Foundation
import Testing

/// A store that cannot reach its server fails its start quickly, saying why.
@Suite("PostgreSQL: start-up failures", .timeLimit(.minutes(1)))
struct PostgresStartupTests {
    func startupError(_ url: String) async throws -> StoreError {
        var configuration = try PostgresStore.Configuration(url: url)
        configuration.startupTimeout = .seconds(1)
        let store = try PostgresStore(configuration: configuration, logger: PostgresTestDatabase.quiet)
        let clock = ContinuousClock()
        let started = clock.now
        let error = try await #require(throws: StoreError.self) { try await store.run() }
        #expect(clock.now - started < .seconds(20), "it fails within the startup timeout, not after the pool's own minute")
        await #expect(throws: StoreError.self, "operations fail with the same reason") { try await store.ready() }
        return error
    }

    @Test func aServerThatIsNotThereIsNamedWithTheRefusal() async throws {
        let error = try await startupError("postgres://edda:secret@127.0.0.1:1/orders?sslmode=disable")
        #expect(error.message.contains("Cannot reach PostgreSQL at 127.0.0.1:1 as 'edda', database 'orders'"))
        #expect("\(error)".lowercased().contains("refused"), "the cause says what happened: \(error)")
        #expect(!"\(error)".contains("secret"))
    }

    @Test(.enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"))
    func aMissingDatabaseIsNamedByTheServersOwnMessage() async throws {
        let url = try #require(PostgresTestDatabase.url)
        var components = try #require(URLComponents(string: url))
        components.path = "/no_such_database_\(UUID().uuidString.prefix(6).lowercased())"
        let error = try await startupError(try #require(components.string))
        #expect("\(error)".contains("does not exist"), "\(error)")
    }
}
