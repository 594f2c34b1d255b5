import Edda
import EddaPostgres
import EddaTestSupport
import EddaStoreConformance
import Testing

@Suite("Store conformance: PostgreSQL", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(1)))
struct PostgresConformanceTests {
    @Test(arguments: StoreConformance.allCases)
    func conformance(_ check: StoreConformance) async throws {
        let completed = try await check.run { body in
            try await PostgresTestDatabase.withStore { store in try await body(store) }
        }
        #expect(completed, "the factory never handed the check a store")
    }
}
