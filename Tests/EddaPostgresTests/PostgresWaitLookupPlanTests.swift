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
            // The statement delivers as it is explained: the wait goes, the instance wakes, the record is written.
            var binds = PostgresBindings()
            binds.append("payment.completed")
            binds.append(MessageKind.event.rawValue)
            binds.append(Int64(0))
            binds.append("waiting-12345")
            binds.append(MessageWait.deliveryPayload(channel: "payment.completed", sequence: nil, envelope: "{}"))
            binds.append(HistoryEventKind.messageReceived.rawValue)
            let query = PostgresQuery(unsafeSQL: PostgresStore.targetedDelivery(t), binds: binds)
            let plan = try await PostgresClaimPlanTests.analyzedPlan(of: query, on: store)
            let read = try PostgresClaimPlanTests.rowsRead(fromPlan: plan, relation: "workflow_waits")
            // Before: the channel's index in created_at order, every earlier waiter read and dropped.
            #expect(read < 10, "the lookup read \(read) waits; the plan: \(plan)")
            let history = try await store.history(of: "waiting-12345")
            #expect(history.map(\.kind) == [.messageReceived])
            var left: [Int64] = []
            for try await count in try await store.client.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(t.waits)")).decode(Int64.self) {
                left.append(count)
            }
            #expect(left == [49_999])
        }
    }
}
