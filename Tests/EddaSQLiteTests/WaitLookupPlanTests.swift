@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaSQLite
import EddaTesting
import Foundation
import GRDB
import Testing

/// An event for one instance looks its wait up by the instance, however many instances wait on the
/// same event type.
@Suite("SQLite: a targeted message's wait lookup", .timeLimit(.minutes(1)))
struct WaitLookupPlanTests {
    @Test(arguments: [false, true])
    func aTargetedEventAmong20000WaitersReadsItsInstancesWaitOnly(analyzed: Bool) async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await store.writer.write { db in
                try db.execute(
                    sql: """
                        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
                        INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, created_at, updated_at)
                        SELECT 'waiting-' || i, 'w', 'test', 'running', '[]', i, i FROM n;
                        INSERT INTO workflow_waits (instance_id, step_id, position, step_name, channel, kind, created_at)
                        SELECT instance_id, 'wait:1', 1, 'edda.wait_event', 'payment.completed', 'event', created_at FROM workflow_instances;
                        """
                )
                if analyzed { try db.execute(sql: "ANALYZE") }
            }
            let message = OutgoingMessage(
                channel: "payment.completed", kind: .event, target: "waiting-12345",
                envelope: MessageEnvelope(CloudEvent(type: "payment.completed", source: "test"), sender: nil),
                retention: .seconds(60)
            )
            let (sql, arguments) = SQLiteStore.waitCandidates(for: message, now: 0)
            let plan = try await store.writer.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
            }
            let waits = plan.filter { $0.contains(" w ") || $0.contains("workflow_waits") }
            // Before: the channel's index, every waiter of the event type read for one of them.
            #expect(!plan.joined().contains("workflow_waits_by_channel"), "the plan: \(plan)")
            #expect(waits.allSatisfy { $0.contains("instance_id=?") }, "the waits are looked up by instance: \(plan)")
            let found = try await store.writer.read { db in
                try Row.fetchAll(db, sql: sql, arguments: arguments).map { $0["instance_id"] as String }
            }
            #expect(found == ["waiting-12345"])
        }
    }
}
