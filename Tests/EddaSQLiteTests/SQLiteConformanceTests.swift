import Edda
import EddaSQLite
import EddaStoreConformance
import EddaTesting
import Testing

@Suite("Store conformance: SQLite", .timeLimit(.minutes(1)))
struct SQLiteConformanceTests {
    @Test("on a file", arguments: StoreConformance.allCases)
    func onAFile(_ check: StoreConformance) async throws {
        let completed = try await check.run { body in
            try await withTemporaryDatabase { path in try await body(SQLiteStore(path: path)) }
        }
        #expect(completed, "the factory never handed the check a store")
    }

    @Test("in memory", arguments: StoreConformance.allCases)
    func inMemory(_ check: StoreConformance) async throws {
        let completed = try await check.run { body in try await body(SQLiteStore.inMemory()) }
        #expect(completed, "the factory never handed the check a store")
    }
}
