@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaSQLite
import EddaTesting
import Foundation
import GRDB
import Testing

/// What an admission reads on SQLite: its queue's places and its first queued instances, however
/// many instances are queued there or anywhere else.
@Suite("SQLite: admissions read through indexes", .timeLimit(.minutes(1)))
struct AdmissionPlanTests {
    @Test func anAdmissionAmong100000QueuedInstancesSearchesIndexesOnly() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try await store.writer.write { db in
                // 100,000 queued on "q" (priorities 0–2), 50,000 running on no queue, 20,000 queued
                // on "other"; on "q", 2 admitted a minute ago.
                try db.execute(
                    sql: """
                        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at,
                            queue_name, priority)
                        SELECT printf('queued-%06d', i), 'w', 'test', 'queued', '[]', 100000 + i, 100000 + i, 'q', i % 3 FROM n;
                        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at)
                        SELECT 'plain-' || i, 'w', 'test', 'running', '[]', i, i FROM n;
                        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at,
                            queue_name)
                        SELECT 'elsewhere-' || i, 'w', 'test', 'queued', '[]', i, i, 'other' FROM n;
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at,
                            queue_name, lease_owner, admitted_at)
                        VALUES ('admitted-1', 'w', 'test', 'running', '[]', 1, 1, 'q', 'other', ?1 - 60000),
                               ('admitted-2', 'w', 'test', 'running', '[]', 1, 1, 'q', 'other', ?1 - 60000);
                        ANALYZE;
                        """,
                    arguments: [now]
                )
            }
            try await store.declareQueues([Queue("q", concurrency: 5, rateLimit: .init(100, per: .seconds(3600))), Queue("other")])
            let request = ClaimRequest(lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 10, workflowNames: ["w"], queues: ["q"])
            let (admitted, statements, elapsed) = try await store.writer.write { db in
                // Every statement the admission runs, as SQLite expanded it, to ask for its plan.
                let statements = StatementLog()
                db.trace(options: .statement) { event in
                    if case .statement(let statement) = event { statements.append(statement.expandedSQL) }
                }
                let start = ContinuousClock.now
                let admitted = try SQLiteStore.admitQueued(db, request, limit: request.limit, now: now).map { $0["instance_id"] as String }
                let elapsed = ContinuousClock.now - start
                db.trace(options: [], nil)
                return (admitted, statements.all, elapsed)
            }
            // Three places were free: the three oldest queued at priority 0.
            #expect(admitted == ["queued-000003", "queued-000006", "queued-000009"])
            let plans = try await store.writer.read { db in
                try statements.map { sql in
                    try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String }
                }
            }
            #expect(plans.count >= 4, "the limits, the places, the rate and the update: \(statements)")
            for (sql, plan) in zip(statements, plans) {
                #expect(!plan.contains { $0.hasPrefix("SCAN workflow_instances") }, "a full scan for \(sql): \(plan)")
                // Narrowed past the queue: by status, by admission time, or by ID.
                let searches = plan.filter { $0.hasPrefix("SEARCH workflow_instances") }
                #expect(searches.allSatisfy { $0.contains(" AND ") || $0.contains("(instance_id=?)") }, "\(sql): \(plan)")
            }
            print("SQLite: an admission among 100,000 queued instances took \(elapsed) (\(statements.count) statements)")
        }
    }

    @Test func aPartitionedAdmissionAmong100000QueuedInstancesTakesEachPartitionsHead() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await store.writer.write { db in
                // 1,000 customers with 100 queued each (100,000); the first 990 have one running already.
                try db.execute(
                    sql: """
                        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1000),
                            n(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM n WHERE j < 100)
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at,
                            queue_name, partition_key)
                        SELECT 'queued-' || i || '-' || j, 'w', 'test', 'queued', '[]', 100000 + j * 1000 + i, 1, 'per_customer',
                            printf('customer-%04d', i) FROM c, n;
                        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 990)
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at,
                            queue_name, partition_key, lease_owner)
                        SELECT 'running-' || i, 'w', 'test', 'running', '[]', i, i, 'per_customer', printf('customer-%04d', i), 'other' FROM c;
                        ANALYZE;
                        """
                )
            }
            try await store.declareQueues([Queue("per_customer", concurrency: 1, partitioned: true)])
            let request = ClaimRequest(
                lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 20, workflowNames: ["w"], queues: ["per_customer"]
            )
            let (admitted, elapsed) = try await store.writer.write { db in
                let start = ContinuousClock.now
                let admitted = try SQLiteStore.admitQueued(db, request, limit: request.limit, now: 1).map { $0["instance_id"] as String }
                return (admitted, ContinuousClock.now - start)
            }
            // The ten customers with room: each one's oldest.
            #expect(admitted.sorted() == (991...1000).map { "queued-\($0)-1" }.sorted())
            print("SQLite: a partitioned admission among 100,000 queued instances in 1,000 partitions took \(elapsed)")
        }
    }
}

/// The statements a trace saw.
private final class StatementLog: @unchecked Sendable {
    private let lock = NSLock()
    private var statements: [String] = []

    func append(_ sql: String) { lock.withLock { statements.append(sql) } }
    var all: [String] { lock.withLock { statements } }
}
