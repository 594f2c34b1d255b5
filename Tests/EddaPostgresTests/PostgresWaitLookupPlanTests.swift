@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaPostgres
import EddaTestSupport
import Foundation
import PostgresNIO
import Testing

/// An event for one instance looks its wait up by the instance, however many instances wait on the
/// same event type.
@Suite("PostgreSQL: a targeted message's wait lookup", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresWaitLookupPlanTests {
    @Test(arguments: [false, true])
    func aTargetedEventAmong50000WaitersReadsItsInstancesWaitOnly(analyzed: Bool) async throws {
        try await PostgresTestDatabase.withStore { store in
            let t = store.tables
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at)
                        SELECT 'waiting-' || n, 'w', 'test', 'running', '[]', 0, n, n FROM generate_series(1, 50000) AS n
                        """
                )
            )
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.waits) (instance_id, step_id, position, step_name, channel, kind, created_at)
                        SELECT instance_id, 'wait:1', 1, 'edda.wait_event', 'payment.completed', 'event', created_at FROM \(t.instances)
                        """
                )
            )
            if analyzed {
                try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.waits)"))
                try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.instances)"))
            }
            let message = OutgoingMessage(
                channel: "payment.completed", kind: .event, target: "waiting-12345",
                envelope: MessageEnvelope(CloudEvent(type: "payment.completed", source: "test"), sender: nil), retention: .seconds(60)
            )
            let query = PostgresStore.waitCandidates(for: message, now: 0, tables: t)
            let plan = try await PostgresClaimPlanTests.analyzedPlan(of: query, on: store)
            let read = try PostgresClaimPlanTests.rowsRead(fromPlan: plan, relation: "workflow_waits")
            // Before: the channel's index in created_at order, every earlier waiter read and dropped.
            #expect(read < 10, "the lookup read \(read) waits; the plan: \(plan)")
            var found: [String] = []
            for try await row in try await store.client.query(query).decode((String, String, Int64?, String, Int64?).self) {
                found.append(row.0)
            }
            #expect(found == ["waiting-12345"])
        }
    }
}
