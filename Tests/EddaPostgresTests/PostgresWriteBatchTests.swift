@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaPostgres
import EddaTestSupport
import Foundation
import PostgresNIO
import Testing

/// The write batch: records, new instances and completions of concurrent runs in one statement,
/// prepared on the write connections (or, without session settings, with its tables qualified).
@Suite("PostgreSQL: the write batch", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresWriteBatchTests {
    /// Runs `body` on a running store in a fresh schema: with the batch prepared (session settings
    /// sent) or not.
    func withStore(prepared: Bool, _ body: (PostgresStore) async throws -> Void) async throws {
        let schema = PostgresTestDatabase.freshSchema()
        var configuration = try PostgresTestDatabase.configuration(schema: schema)
        configuration.sendsSessionSettings = prepared
        let store = try PostgresStore(configuration: configuration, logger: PostgresTestDatabase.quiet)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await store.ready()
            do {
                try await body(store)
            } catch {
                try? await PostgresTestDatabase.dropSchema(schema, using: store)
                throw error
            }
            try await PostgresTestDatabase.dropSchema(schema, using: store)
        }
    }

    func leased(_ store: PostgresStore, _ id: String) async throws -> Lease {
        let outcome = try await store.createInstance(
            NewInstance(instanceID: id, workflowName: "w", serviceName: "s", input: JSONPayload(json: "{}")),
            leasedTo: LeaseRequest(owner: "worker", duration: .seconds(30))
        )
        guard case .created(_, let lease?) = outcome else { throw StoreError(.database, "\(id) was not created leased") }
        return lease
    }

    func record(_ id: String, step: String) -> HistoryEvent {
        HistoryEvent(instanceID: id, stepID: step, position: 0, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1"))
    }

    /// One batch of every kind of write, some refused: each write gets its own outcome, and only
    /// the accepted ones are in the tables.
    @Test(arguments: [true, false])
    func eachWriteOfABatchFaresOnItsOwn(prepared: Bool) async throws {
        try await withStore(prepared: prepared) { store in
            let a = try await leased(store, "a")
            let b = try await leased(store, "b")
            let c = try await leased(store, "c")
            var stale = b
            stale.token = 99
            var staleC = c
            staleC.owner = "someone-else"
            let results = await store.write([
                .append(record("a", step: "s:1"), a),
                .append(record("b", step: "s:1"), stale),
                .create(NewInstance(instanceID: "d", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[1]")), nil),
                .create(NewInstance(instanceID: "a", workflowName: "w", serviceName: "s", input: JSONPayload(json: "{}")), nil),
                .complete(a, JSONPayload(json: "\"done\"")),
                .complete(staleC, JSONPayload(json: "0")),
            ])
            #expect(results.count == 6)
            #expect((try? results[0].get()).map { if case .written = $0 { true } else { false } } == true)
            #expect(StoreError.isLeaseLost(results[1]), "a stale token is refused: \(results[1])")
            #expect((try? results[2].get()).map { if case .created = $0 { true } else { false } } == true)
            #expect((try? results[3].get()).map { if case .exists = $0 { true } else { false } } == true)
            #expect((try? results[4].get()).map { if case .written = $0 { true } else { false } } == true)
            #expect(StoreError.isLeaseLost(results[5]), "another owner's completion is refused: \(results[5])")

            #expect(try await store.history(of: "a").map(\.stepID) == ["s:1"])
            #expect(try await store.history(of: "b").isEmpty)
            let d = try #require(try await store.instance("d"))
            #expect(d.status == .running && d.leaseOwner == nil && d.input.json == "[1]")
            let completed = try #require(try await store.instance("a"))
            #expect(completed.status == .completed && completed.output?.json == "\"done\"" && completed.leaseOwner == nil)
            #expect(try await store.instance("c")?.status == .running)
        }
    }

    /// Two writes with the same key in one batch go to two statements: the first is written, the
    /// second finds its record there and says so.
    @Test(arguments: [true, false])
    func aRepeatedRecordInOneBatchIsRefusedAfterTheFirst(prepared: Bool) async throws {
        try await withStore(prepared: prepared) { store in
            let a = try await leased(store, "a")
            let b = try await leased(store, "b")
            let results = await store.write([
                .append(record("a", step: "s:1"), a), .append(record("b", step: "s:1"), b), .append(record("a", step: "s:1"), a),
            ])
            #expect((try? results[0].get()) != nil && (try? results[1].get()) != nil)
            let refusal = try #require(results[2].error as? StoreError)
            #expect(refusal.message.contains("already has"), "\(refusal)")
            #expect(try await store.history(of: "a").count == 1)
        }
    }

    /// Instances completed in a batch wake a `result()` waiting in another process, through the
    /// notification sent in the batch's own statement.
    @Test func completionsInABatchNotifyOtherProcesses() async throws {
        try await withStore(prepared: true) { store in
            var configuration = try PostgresTestDatabase.configuration(schema: store.configuration.schema)
            configuration.migratesSchema = false
            let other = try PostgresStore(configuration: configuration, logger: PostgresTestDatabase.quiet)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await other.run() }
                defer { group.cancelAll() }
                try await other.ready()
                // The other store's LISTEN may not be active at the first batch: batches go on until
                // one is heard (each completes two fresh instances, the second watched).
                let clock = ContinuousClock()
                var heard = false
                for round in 0..<50 where !heard {
                    let first = try await leased(store, "a-\(round)")
                    let second = try await leased(store, "b-\(round)")
                    let watch = other.outcomes.watch(second.instanceID)
                    let results = await store.write([.complete(first, JSONPayload(json: "1")), .complete(second, JSONPayload(json: "2"))])
                    #expect(results.allSatisfy { (try? $0.get()) != nil })
                    let began = clock.now
                    await watch.wait(upTo: .milliseconds(300))
                    heard = began.duration(to: clock.now) < .milliseconds(290)
                    watch.end()
                }
                #expect(heard, "a batch's completions woke a watch in another process")
            }
        }
    }
}

extension Result where Failure == any Error {
    var error: (any Error)? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

extension StoreError {
    static func isLeaseLost<T>(_ result: Result<T, any Error>) -> Bool {
        guard case .failure(let error) = result else { return false }
        return (error as? StoreError)?.code == .leaseLost
    }
}
