import Edda
import EddaPostgres
import EddaTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("PostgreSQL is there in CI")
struct PostgresAvailabilityTests {
    @Test func aServerIsConfiguredWhenRequired() {
        if PostgresTestDatabase.isRequired {
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
