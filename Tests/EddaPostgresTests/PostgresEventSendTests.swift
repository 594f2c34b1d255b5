@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaPostgres
import EddaTestSupport
import EddaTesting
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Events sent to one instance lock that instance's key of the event type, not the whole type: sends
/// to different instances do not queue behind each other's commits, and still never race a send to
/// every waiter of the type.
@Suite("PostgreSQL: events sent to one instance", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresEventSendTests {
    static let approval = Workflow("approval") { (ctx, request: String) -> String in
        let decision = try await ctx.waitForEvent(type: "approval.decided", as: String.self, timeout: .seconds(60))
        return "\(request): \(decision.data)"
    }

    static func decision(_ text: String) throws -> CloudEvent {
        try CloudEvent(type: "approval.decided", source: "/managers", json: text)
    }

    /// Runs `body` with `apps` apps (their own stores) on one fresh schema, the first store given too.
    func withApps<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (PostgresStore, [EddaApp]) async throws -> T) async throws -> T {
        let schema = PostgresTestDatabase.freshSchema()
        var stores: [PostgresStore] = []
        var apps: [EddaApp] = []
        for index in 0..<count {
            var configuration = EddaApp.Configuration.testing
            configuration.workerID = "worker-\(index)"
            let store = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
            let app = EddaApp(store: store, serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet)
            try app.register(Self.approval)
            stores.append(store)
            apps.append(app)
        }
        let (ready, first) = (apps, stores[0])
        @Sendable func running(_ index: Int) async throws -> T {
            guard index < ready.count else { return try await body(first, ready) }
            return try await ready[index].run { _ in try await running(index + 1) }
        }
        let result = try await running(0)
        try await PostgresTestDatabase.withStore(schema: schema) { _ in }
        return result
    }

    static func waitUntilWaiting(_ count: Int, on app: EddaApp) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while try await app.store.statusCounts(matching: InstanceQuery(workflowName: "approval"))[.waiting, default: 0] < count {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Sessions waiting for either advisory lock a send to approval-1 takes (other tests' locks aside).
    static func advisoryLockWaiters(_ store: PostgresStore) async throws -> Int64 {
        let (channel, instance) = PostgresStore.lockKeys(schema: store.tables.schema, channel: "approval.decided", instanceID: "approval-1")
        var count: Int64 = 0
        let rows = try await store.client.query(
            """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
                AND ((classid::bigint << 32) | objid::bigint) IN (hashtextextended(\(channel), 0), hashtextextended(\(instance), 0))
            """
        )
        for try await value in rows.decode(Int64.self) { count = value }
        return count
    }

    @Test func aSendToOneInstanceDoesNotWaitForASendToAnotherStillInFlight() async throws {
        let (toSecond, toFirst) = try await withApps(1) { store, apps in
            let app = apps[0]
            let first = try await app.start(Self.approval, "expense 1", instanceID: "approval-1")
            let second = try await app.start(Self.approval, "expense 2", instanceID: "approval-2")
            try await Self.waitUntilWaiting(2, on: app)
            // Another session holds what a send to approval-1 takes, as a send whose commit is slow would.
            return try await store.client.withConnection { holder in
                let (channel, instance) = PostgresStore.lockKeys(schema: store.tables.schema, channel: "approval.decided", instanceID: "approval-1")
                try await holder.query("BEGIN", logger: PostgresTestDatabase.quiet)
                try await holder.query(
                    "SELECT pg_advisory_xact_lock_shared(hashtextextended(\(channel), 0)), pg_advisory_xact_lock(hashtextextended(\(instance), 0))",
                    logger: PostgresTestDatabase.quiet
                )
                // A send to approval-2 finishes, or is seen waiting for a lock (the whole type's: the defect).
                let secondSent = Atomic<Bool>(false)
                let toSecond = Task {
                    defer { secondSent.store(true, ordering: .releasing) }
                    return try await app.sendEvent(try Self.decision("approved"), to: "approval-2")
                }
                let toFirst = Task { try await app.sendEvent(try Self.decision("declined"), to: "approval-1") }
                var waiters: Int64 = 0
                while waiters < 2 {
                    waiters = try await Self.advisoryLockWaiters(store)
                    if waiters == 1, secondSent.load(ordering: .acquiring) { break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                #expect(waiters == 1, "the send to approval-2 waited for the lock of approval-1's")
                try await holder.query("COMMIT", logger: PostgresTestDatabase.quiet)
                let results = (try await toSecond.value, try await toFirst.value)
                #expect(try await second.result() == "expense 2: approved")
                #expect(try await first.result() == "expense 1: declined")
                return results
            }
        }
        #expect(toSecond)
        #expect(toFirst)
    }

    @Test func sendsToEachInstanceRacingSendsToEveryWaiterDeliverEachEventOnce() async throws {
        let count = 16
        let (delivered, records) = try await withApps(2) { _, apps in
            var handles: [WorkflowHandle<String>] = []
            for index in 0..<count {
                handles.append(try await apps[0].start(Self.approval, "expense \(index)", instanceID: "approval-\(index)"))
            }
            try await Self.waitUntilWaiting(count, on: apps[0])
            // Each instance is sent one event of its own from one store while the other sends events to
            // every waiter of the type: every delivery is reported once, and each instance takes one.
            let delivered = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<count {
                    group.addTask {
                        do {
                            return try await apps[1].sendEvent(try Self.decision("own"), to: "approval-\(index)") ? 1 : 0
                        } catch let error as EngineError where error.code == .alreadyFinished {
                            return 0
                        }
                    }
                    group.addTask { try await apps[0].sendEvent(try Self.decision("any")).count }
                }
                return try await group.reduce(0, +)
            }
            var records = 0
            for (index, handle) in handles.enumerated() {
                _ = try await handle.result()
                records += try await apps[1].history(of: "approval-\(index)").filter { $0.kind == .messageReceived }.count
            }
            return (delivered, records)
        }
        #expect(records == count, "each instance recorded exactly one event")
        #expect(delivered == count, "each recorded event was reported delivered by exactly one send")
    }
}
