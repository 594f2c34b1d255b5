@_spi(EddaStores) import Edda
import EddaOutbox
@_spi(EddaStores) import EddaPostgres
import EddaTesting
import EddaTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// `ctx.transaction`, whole-body transactional activities and the outbox, on PostgreSQL.
@Suite("PostgreSQL: transactional steps and the outbox", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresTransactionTests {
    struct Flaky: Error {}

    /// Runs `body` with an app on a fresh schema that has an `orders (id, note)` table; drops it after.
    func withOrders<T: Sendable>(
        configuring configure: (inout PostgresStore.Configuration) -> Void = { _ in },
        _ body: @escaping @Sendable (EddaApp, PostgresStore, _ orders: String) async throws -> T
    ) async throws -> T {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        var configuration = try PostgresTestDatabase.configuration(schema: schema)
        configure(&configuration)
        let store = try PostgresStore(configuration: configuration, logger: PostgresTestDatabase.quiet)
        let orders = "\"\(schema)\".orders"
        do {
            let result = try await withTestApp(store: store) { app in
                try await store.ready()
                try await store.client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(orders) (id TEXT PRIMARY KEY, note TEXT NOT NULL)"))
                return try await body(app, store, orders)
            }
            try await PostgresTestDatabase.withStore(schema: schema) { _ in }
            return result
        } catch {
            try? await PostgresTestDatabase.withStore(schema: schema) { _ in }
            throw error
        }
    }

    func notes(_ store: PostgresStore, _ orders: String) async throws -> [String] {
        var notes: [String] = []
        for try await note in try await store.client.query(PostgresQuery(unsafeSQL: "SELECT note FROM \(orders) ORDER BY id")).decode(String.self) {
            notes.append(note)
        }
        return notes
    }

    @Test func aBodysQueriesCommitWithTheStepsRecordAndAFailedAttemptCommitsNothing() async throws {
        try await withOrders { (app: EddaApp, store: PostgresStore, orders: String) async throws in
            let place = Activity("place") { (ctx, id: String) -> Int in
                try await ctx.transaction { conn in
                    try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES (\(id), \("attempt \(ctx.attempt)"))", logger: ctx.logger)
                }
                try await ctx.transaction { conn in
                    // The first attempt's work fails after its insert ran: all of the attempt rolls back.
                    if ctx.attempt == 1 { throw Flaky() }
                    try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES (\(id + "-b"), \("second body"))", logger: ctx.logger)
                }
                return ctx.attempt
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1", instanceID: "w1").result() == 2)
            #expect(try await notes(store, orders) == ["attempt 2", "second body"])
            #expect(try await app.history(of: "w1").map(\.kind) == [.attemptFailed, .activityCompleted])
        }
    }

    @Test func aNestedBodyThatThrowsRollsBackOnlyItsOwnQueries() async throws {
        try await withOrders { (app: EddaApp, store: PostgresStore, orders: String) async throws in
            let place = Activity("place") { (ctx) -> Bool in
                try await ctx.transaction { conn in
                    try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES ('a', 'outer')", logger: ctx.logger)
                    #expect(ctx.inTransaction)
                    do {
                        try await ctx.transaction { conn in
                            try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES ('b', 'nested')", logger: ctx.logger)
                            throw Flaky()
                        }
                    } catch is Flaky {}
                    try await ctx.transaction { conn in
                        try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES ('c', 'nested, kept')", logger: ctx.logger)
                    }
                }
                return ctx.inTransaction
            }
            let workflow = Workflow("nesting") { (ctx) -> Bool in try await place(ctx) }
            #expect(try await app.start(workflow).result() == false, "outside the bodies, the activity is not in the transaction")
            #expect(try await notes(store, orders) == ["outer", "nested, kept"])
        }
    }

    @Test func aWholeBodyActivitysQueriesSeeEachOtherAndCommitWithItsRecord() async throws {
        try await withOrders { (app: EddaApp, store: PostgresStore, orders: String) async throws in
            let seen = Mutex<[String]>([])
            let transfer = Activity("transfer", transaction: .wholeBody) { (ctx, id: String) -> Int in
                let conn = try ctx.connection
                try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES (\(id), \("attempt \(ctx.attempt)"))", logger: ctx.logger)
                var count = 0
                for try await n in try await conn.query("SELECT count(*)::bigint FROM \(unescaped: orders)", logger: ctx.logger).decode(Int64.self) { count = Int(n) }
                seen.withLock { $0.append("attempt \(ctx.attempt) sees \(count), in transaction: \(ctx.inTransaction)") }
                try await ctx.transaction { conn in   // runs at once, in a savepoint
                    try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES (\(id + "-n"), 'nested')", logger: ctx.logger)
                }
                var event = CloudEvent(id: "evt-\(ctx.attempt)", type: "order.moved", source: "/tests")
                event.extensions = ["tenant": "acme"]
                try ctx.enqueue(event)
                if ctx.attempt == 1 { throw Flaky() }
                return count
            }
            let workflow = Workflow("transferring") { (ctx, id: String) -> Int in try await transfer(ctx, id) }
            #expect(try await app.start(workflow, "t1", instanceID: "w").result() == 1)
            #expect(seen.withLock { $0 } == ["attempt 1 sees 1, in transaction: true", "attempt 2 sees 1, in transaction: true"])
            #expect(try await notes(store, orders) == ["attempt 2", "nested"], "the failed attempt's queries rolled back")
            #expect(try await store.outboxEvents(status: nil, limit: 10).map(\.event.id) == ["evt-2"])
            #expect(try await store.outboxEvents(status: nil, limit: 10).first?.event.extensions == ["tenant": "acme"], "extensions are kept")
            #expect(try await app.history(of: "w").map(\.kind) == [.attemptFailed, .activityCompleted])
        }
    }

    /// A whole-body activity that hangs (a call that never answers, deaf to cancellation) must not
    /// hold its transaction, its locks and its instance for ever.
    @Test func aWholeBodyAttemptThatHangsIsAbandonedRolledBackAndRetried() async throws {
        try await withOrders(configuring: { $0.wholeBodyTimeout = .milliseconds(1_500) }) { (app: EddaApp, store: PostgresStore, orders: String) async throws in
            let hang = Activity("hang", transaction: .wholeBody) { (ctx, id: String) -> Int in
                try await ctx.connection.query("INSERT INTO \(unescaped: orders) (id, note) VALUES (\(id + "-\(ctx.attempt)"), \("attempt \(ctx.attempt)"))", logger: ctx.logger)
                if ctx.attempt == 1 {
                    await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }   // never answers
                }
                return ctx.attempt
            }
            let workflow = Workflow("hanging") { (ctx, id: String) -> Int in try await hang(ctx, id) }
            #expect(try await app.start(workflow, "h", instanceID: "hung").result() == 2)
            #expect(try await notes(store, orders) == ["attempt 2"], "the hung attempt's insert was rolled back")
            let failed = try await app.history(of: "hung").filter { $0.kind == .attemptFailed }
            #expect(failed.count == 1)
            #expect(failed.first?.error?.type.contains("WholeBodyTimeoutError") == true, "\(String(describing: failed.first?.error))")
        }
    }

    @Test func eddasSessionsCarryAStatementAndAnIdleInTransactionTimeout() async throws {
        try await withOrders(configuring: { $0.wholeBodyTimeout = .seconds(20); $0.statementTimeout = .seconds(7) }) {
            (_: EddaApp, store: PostgresStore, _: String) async throws in
            var settings: [String] = []
            for name in ["statement_timeout", "idle_in_transaction_session_timeout"] {
                for try await value in try await store.client.query(PostgresQuery(unsafeSQL: "SHOW \(name)")).decode(String.self) {
                    settings.append(value)
                }
            }
            #expect(settings == ["7s", "30s"], "the server ends a session idle in a transaction 10 s past the whole-body limit")
        }
    }

    /// Edda's statements are written for READ COMMITTED; a role whose default is SERIALIZABLE must
    /// not change that (its claims and fenced writes would fail with serialization errors).
    @Test func eddasTransactionsAreReadCommittedWhateverTheRolesDefault() async throws {
        let role = "edda_serializable_\(UUID().uuidString.prefix(6).lowercased())"
        try await PostgresTestDatabase.withStore { admin in
            try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE ROLE \(role) LOGIN SUPERUSER"))
            try await admin.client.query(PostgresQuery(unsafeSQL: "ALTER ROLE \(role) SET default_transaction_isolation = 'serializable'"))
            let url = try #require(PostgresTestDatabase.url)
            var components = try #require(URLComponents(string: url))
            components.user = role
            var configuration = try PostgresStore.Configuration(url: try #require(components.string))
            configuration.schema = PostgresTestDatabase.freshSchema()
            let store = try PostgresStore(configuration: configuration, logger: PostgresTestDatabase.quiet)
            let isolation = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    try await store.run()
                    return nil
                }
                try await store.ready()
                var isolation = ""
                try await store.client.withTransaction(logger: PostgresTestDatabase.quiet) { connection in
                    for try await value in try await connection.query("SHOW transaction_isolation", logger: PostgresTestDatabase.quiet).decode(String.self) {
                        isolation = value
                    }
                }
                try await PostgresTestDatabase.dropSchema(configuration.schema, using: store)
                group.cancelAll()
                return isolation
            }
            #expect(isolation == "read committed")
            try await admin.client.query(PostgresQuery(unsafeSQL: "DROP ROLE \(role)"))
        }
    }

    /// A body that swallows a failed query leaves the transaction unable to commit: that is the
    /// attempt's failure (retried by its policy), not the store's (which would retry it for ever).
    @Test func aBodyThatSwallowsAFailedQueryFailsItsAttempt() async throws {
        try await withOrders { (app: EddaApp, store: PostgresStore, orders: String) async throws in
            try await store.client.query(PostgresQuery(unsafeSQL: "INSERT INTO \(orders) (id, note) VALUES ('dup', 'first')"))
            let attempts = Atomic(0)
            let place = Activity("place", retry: RetryPolicy(maxAttempts: 2, initialInterval: .milliseconds(1), maxDuration: nil)) { (ctx) -> Int in
                attempts.add(1, ordering: .relaxed)
                try await ctx.transaction { conn in
                    do {
                        try await conn.query("INSERT INTO \(unescaped: orders) (id, note) VALUES ('dup', 'again')", logger: ctx.logger)
                    } catch {}   // the transaction is aborted now
                }
                return 1
            }
            let workflow = Workflow("swallowing") { (ctx) -> Int in try await place(ctx) }
            let failure = try await #require(throws: WorkflowFailedError.self) { try await app.start(workflow, instanceID: "s").result() }
            #expect(attempts.load(ordering: .relaxed) == 2, "each attempt failed once, and the policy stopped after two")
            #expect(failure.error.message.contains("25P02"), "\(failure.error)")
            #expect(try await notes(store, orders) == ["first"])
        }
    }

    @Test func aStaleLeaseRunsNoneOfTheStepsWork() async throws {
        try await PostgresTestDatabase.withStore { store in
            let lease = try await store.createLeasedInstance("i", workflowName: "w", owner: "worker-a")
            let stale = Lease(instanceID: "i", owner: lease.owner, token: lease.token + 1)
            let ran = Atomic(false)
            let event = HistoryEvent(instanceID: "i", stepID: "s:1", position: 0, name: "s", kind: .activityCompleted, payload: nil)
            let error = await #expect(throws: StoreError.self) {
                try await store.appendRunningAttempt(StepTransaction(), lease: stale) { () -> (HistoryEvent, Int) in
                    ran.store(true, ordering: .relaxed)
                    return (event, 1)
                }
            }
            #expect(error?.code == .leaseLost)
            #expect(ran.load(ordering: .relaxed) == false, "the fence is checked before any of the step's work runs")
            _ = try await store.appendRunningAttempt(StepTransaction(), lease: lease) { (event, 1) }
            #expect(try await store.history(of: "i").map(\.stepID) == ["s:1"])
        }
    }

    @Test func twoRelaysDeliverEveryEventExactlyOnce() async throws {
        let emit = Activity("emit") { (ctx, index: Int) -> Bool in
            try ctx.enqueue(try CloudEvent(id: "e-\(index)", type: "order.placed", source: "/tests", json: ["index": index]))
            return true
        }
        let emitting = Workflow("emitting") { (ctx, count: Int) -> Int in
            for index in 0..<count { _ = try await emit(ctx, index, activityID: "emit:\(index)") }
            return count
        }
        let events = 60
        let receiver = EventReceiver()
        try await withOrders { (app: EddaApp, store: PostgresStore, _: String) async throws in
            _ = try await app.start(emitting, events).result()
            let stored = try await store.outboxEvents(status: .pending, limit: 1000)
            #expect(stored.count == events)
            #expect(stored.first?.event.data.map { String(decoding: $0, as: UTF8.self) } == #"{"index":0}"#)
            let published = try await receiver.serve { (endpoint: String) async throws -> [OutboxEvent] in
                let configuration = OutboxRelay.Configuration(endpoint: endpoint, batchSize: 4, pollInterval: .milliseconds(20))
                let relays = (0..<2).map { _ in OutboxRelay(store: store, configuration: configuration, logger: PostgresTestDatabase.quiet) }
                let running = relays.map { relay in Task { try await relay.run() } }
                defer { running.forEach { $0.cancel() } }
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    let published = try await store.outboxEvents(status: .published, limit: 1000)
                    if published.count == events { return published }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return try await store.outboxEvents(status: .published, limit: 1000)
            }
            #expect(published.count == events)
            #expect(published.allSatisfy { $0.attempts == 1 && $0.publishedAt != nil })
        }
        let ids = receiver.requests.map(\.eventID)
        #expect(ids.count == events, "no event was sent twice")
        #expect(Set(ids).count == events)
    }
}
