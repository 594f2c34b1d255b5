@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Logging
import MetricsTestKit
import Testing

/// Retention: the store's pruning (both backends), the pruner, and the app's pruner loop.
@Suite("Retention: pruning finished instances, outbox events and messages", .timeLimit(.minutes(1)))
struct RetentionTests {
    static let day: Int64 = 86_400_000
    static let finished = "status IN ('completed', 'failed', 'cancelled')"

    /// Creates `id` and records one step in its history; `outcome` finishes it, `nil` leaves it running.
    func instance(
        _ id: String, workflow: String = "w", parent: String? = nil, outcome: InstanceOutcome?, compensating: Bool = false, in store: any Store
    ) async throws {
        let created = try await store.createInstance(
            NewInstance(instanceID: id, workflowName: workflow, serviceName: "test", input: JSONPayload(json: "[]"), parentInstanceID: parent),
            leasedTo: LeaseRequest(owner: "seed", duration: .seconds(60))
        )
        guard case .created(_, let lease?) = created else { Issue.record("\(id) exists"); return }
        try await store.append(
            HistoryEvent(instanceID: id, stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1")), lease: lease
        )
        if compensating { try await store.markCompensating(lease: lease) }
        if let outcome {
            try await store.finishInstance(lease: lease, with: outcome, reportingTo: parent)
        } else {
            try await store.release(lease, readyAt: nil)
        }
    }

    /// Moves every time of `ids` back by `days` (their last update included): as if they were that old.
    func age(_ ids: [String], days: Int64, in store: any Store) async throws {
        let list = ids.map { "'\($0)'" }.joined(separator: ", ")
        let shift = days * Self.day
        try await Backend.execute(
            "UPDATE workflow_instances SET updated_at = updated_at - \(shift), created_at = created_at - \(shift) WHERE instance_id IN (\(list))", in: store
        )
    }

    func count(_ table: String, _ condition: String = "1 = 1", in store: any Store) async throws -> Int {
        try await Backend.integer("SELECT count(*) FROM \(table) WHERE \(condition)", in: store)
    }

    /// An archived record (an earlier run) of `id`.
    func archive(_ id: String, in store: any Store) async throws {
        try await Backend.execute(
            """
            INSERT INTO workflow_history_archive (sequence, instance_id, step_id, attempt, position, step_name, kind, payload, recorded_at, run_generation)
            VALUES (1, '\(id)', 'a:1', 0, 1, 'a', 'ActivityCompleted', '1', 0, 1)
            """,
            in: store
        )
    }

    /// An outbox row in `status`, last updated `days` ago.
    func outbox(_ id: String, _ status: OutboxStatus, daysAgo days: Int64, in store: any Store) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let then = now - days * Self.day
        try await Backend.execute(
            """
            INSERT INTO outbox_events (event_id, type, source, event_time, status, attempts, next_attempt_at, created_at, updated_at)
            VALUES ('\(id)', 't', 's', 0, '\(status.rawValue)', 0, \(then), \(then), \(then))
            """,
            in: store
        )
    }

    /// A channel message expiring `days` from now (negative: expired).
    func message(_ channel: String, expiresInDays days: Int64, in store: any Store) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await Backend.execute(
            """
            INSERT INTO channel_messages (channel, kind, envelope, published_at, expires_at)
            VALUES ('\(channel)', 'competing', '{}', \(now - 40 * Self.day), \(now + days * Self.day))
            """,
            in: store
        )
    }

    static let failure = ErrorRecord(type: "Boom", message: "boom")

    func pruneAll(_ store: any Store, _ policy: RetentionPolicy) async throws -> PruneCounts {
        try await Pruner<ContinuousClock>.prune(store, policy: policy)
    }

    @Test(arguments: Backend.allCases)
    func onlyFinishedInstancesOlderThanTheirPeriodGoWithTheirHistoryAndArchive(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await instance("old-done", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await instance("old-failed", outcome: .failed(Self.failure), in: store)
            try await instance("old-cancelled", outcome: .cancelled(Self.failure), in: store)
            try await instance("new-done", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await instance("old-running", outcome: nil, in: store)
            try await instance("old-compensating", outcome: nil, compensating: true, in: store)
            try await instance("old-kept", workflow: "audit", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await instance("old-short", workflow: "report", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await instance("new-short", workflow: "report", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await age(["old-done", "old-failed", "old-cancelled", "old-running", "old-compensating", "old-kept", "old-short"], days: 40, in: store)
            try await age(["new-short"], days: 3, in: store)
            try await archive("old-done", in: store)
            try await archive("old-running", in: store)
            // A status this version does not know is not finished.
            try await instance("old-unknown", outcome: nil, in: store)
            try await age(["old-unknown"], days: 40, in: store)
            try await Backend.execute("UPDATE workflow_instances SET status = 'paused' WHERE instance_id = 'old-unknown'", in: store)

            var policy = RetentionPolicy()
            policy.finishedInstances = .days(30)
            policy.workflows["audit"] = .forever
            policy.workflows["report"] = .days(2)
            let counts = try await pruneAll(store, policy)

            #expect(counts.instances == 5 && counts.history == 5 && counts.archivedHistory == 1, "\(counts)")
            for gone in ["old-done", "old-failed", "old-cancelled", "old-short", "new-short"] {
                #expect(try await store.instance(gone) == nil, "\(gone)")
                #expect(try await store.history(of: gone).isEmpty, "\(gone)")
            }
            for kept in ["new-done", "old-running", "old-compensating", "old-kept", "old-unknown"] {
                #expect(try await store.instance(kept) != nil, "\(kept)")
                #expect(try await store.history(of: kept).count == 1, "\(kept)")
            }
            #expect(try await count("workflow_history_archive", "instance_id = 'old-running'", in: store) == 1)
            // Nothing left to do: a second pass deletes nothing.
            #expect(try await pruneAll(store, policy) == PruneCounts())
        }
    }

    @Test(arguments: Backend.allCases)
    func parentsAndChildrenWaitForEachOther(_ backend: Backend) async throws {
        try await backend.withStore { store in
            // A running parent with a finished child: the child stays (the parent may ask for its result).
            try await instance("p-running", outcome: nil, in: store)
            try await instance("c-done", parent: "p-running", outcome: .completed(JSONPayload(json: "1")), in: store)
            // A finished parent with a running child: the parent stays (the child reports to it).
            try await instance("p-done", outcome: nil, in: store)
            try await instance("c-running", parent: "p-done", outcome: nil, in: store)
            try await Backend.execute("UPDATE workflow_instances SET status = 'completed' WHERE instance_id = 'p-done'", in: store)
            // Both finished: both go.
            try await instance("p-both", outcome: nil, in: store)
            try await instance("c-both", parent: "p-both", outcome: .failed(Self.failure), in: store)
            try await Backend.execute("UPDATE workflow_instances SET status = 'completed' WHERE instance_id = 'p-both'", in: store)
            try await age(["p-running", "c-done", "p-done", "c-running", "p-both", "c-both"], days: 40, in: store)

            let counts = try await pruneAll(store, RetentionPolicy(olderThan: .days(30)))
            #expect(counts.instances == 2, "\(counts)")
            #expect(try await store.instance("p-both") == nil)
            #expect(try await store.instance("c-both") == nil)
            for kept in ["p-running", "c-done", "p-done", "c-running"] {
                #expect(try await store.instance(kept) != nil, "\(kept)")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func outboxEventsGoOnlyOncePublishedOrGivenUpAndMessagesOnlyOnceExpired(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await outbox("published-old", .published, daysAgo: 10, in: store)
            try await outbox("published-new", .published, daysAgo: 1, in: store)
            try await outbox("failed-old", .failed, daysAgo: 10, in: store)
            try await outbox("pending-old", .pending, daysAgo: 400, in: store)
            try await outbox("processing-old", .processing, daysAgo: 400, in: store)
            try await message("expired", expiresInDays: -1, in: store)
            try await message("live", expiresInDays: 1, in: store)

            // The default: published events after 7 days; undelivered kept; expired messages go.
            let counts = try await pruneAll(store, RetentionPolicy())
            #expect(counts.outboxEvents == 1 && counts.messages == 1 && counts.instances == 0, "\(counts)")
            #expect(try await count("outbox_events", "event_id = 'published-old'", in: store) == 0)
            #expect(try await count("outbox_events", in: store) == 4)
            #expect(try await count("channel_messages", "channel = 'live'", in: store) == 1)
            #expect(try await count("channel_messages", in: store) == 1)

            // Undelivered ones too when asked; never pending or processing ones.
            let all = try await pruneAll(store, RetentionPolicy(olderThan: .days(5)))
            #expect(all.outboxEvents == 1, "\(all)")
            #expect(try await count("outbox_events", in: store) == 3)
            #expect(try await count("outbox_events", "status IN ('pending', 'processing')", in: store) == 2)
        }
    }

    @Test(arguments: Backend.allCases)
    func aBatchDeletesAtMostItsLimitPerTable(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let ids = (0..<7).map { "done-\($0)" }
            for id in ids { try await instance(id, outcome: .completed(JSONPayload(json: "1")), in: store) }
            try await age(ids, days: 40, in: store)
            for index in 0..<5 { try await outbox("o-\(index)", .published, daysAgo: 40, in: store) }

            let policy = RetentionPolicy(olderThan: .days(30))
            var sizes: [PruneCounts] = []
            for _ in 0..<4 { sizes.append(try await store.pruneBatch(policy, limit: 3)) }
            #expect(sizes.map(\.instances) == [3, 3, 1, 0], "\(sizes)")
            #expect(sizes.map(\.history) == [3, 3, 1, 0], "\(sizes)")
            #expect(sizes.map(\.outboxEvents) == [3, 2, 0, 0], "\(sizes)")
            #expect(try await count("workflow_instances", in: store) == 0)
        }
    }

    @Test(arguments: Backend.allCases)
    func aDryRunCountsWhatPruningDeletesAndDeletesNothing(_ backend: Backend) async throws {
        try await backend.withStore { store in
            for id in ["a", "b"] { try await instance(id, outcome: .completed(JSONPayload(json: "1")), in: store) }
            try await instance("running", outcome: nil, in: store)
            try await age(["a", "b", "running"], days: 40, in: store)
            try await archive("a", in: store)
            try await outbox("o", .published, daysAgo: 40, in: store)
            try await message("expired", expiresInDays: -1, in: store)
            let policy = RetentionPolicy(olderThan: .days(30))

            let counted = try await store.prunableCounts(policy)
            #expect(counted == PruneCounts(instances: 2, history: 2, archivedHistory: 1, messages: 1, outboxEvents: 1), "\(counted)")
            #expect(try await count("workflow_instances", in: store) == 3)
            #expect(try await count("workflow_history", in: store) == 3)
            #expect(try await count("outbox_events", in: store) == 1)
            #expect(try await count("channel_messages", in: store) == 1)

            #expect(try await pruneAll(store, policy) == counted)
        }
    }

    @Test(arguments: Backend.allCases)
    func theHotIndexesHoldNoPrunedRowAndThePrunerReadsTheStatusIndex(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let ids = (0..<40).map { "done-\($0)" }
            for id in ids { try await instance(id, outcome: .completed(JSONPayload(json: "1")), in: store) }
            try await instance("running", outcome: nil, in: store)
            try await age(ids + ["running"], days: 40, in: store)
            _ = try await pruneAll(store, RetentionPolicy(olderThan: .days(30)))

            // Counted through the indexes a claim and the pruner read: only the running instance is left.
            #expect(try await count("workflow_instances", "status IN ('running', 'compensating')", in: store) == 1)
            #expect(try await count("workflow_instances", Self.finished, in: store) == 0)
            #expect(try await count("workflow_history", in: store) == 1)

            // The pruner's read is a range of the status index (status, workflow, created), not a scan
            // of the table (PostgreSQL is told to avoid a sequential scan, which it prefers on a table
            // this small).
            let plan = try await Backend.plan(
                "SELECT instance_id FROM workflow_instances WHERE \(Self.finished) AND workflow_name = 'w' AND created_at < 0 AND updated_at < 0 "
                    + "ORDER BY created_at LIMIT 500",
                in: store
            )
            #expect(plan.contains("instances_by_status"), "\(plan)")
        }
    }

    @Test func thePrunerCountsWhatItDeletesInAMetric() async throws {
        let metrics = TestMetrics()
        try await Backend.sqlite.withStore { store in
            try await instance("done", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await age(["done"], days: 40, in: store)
            try await outbox("o", .published, daysAgo: 40, in: store)
            let pruner = Pruner(
                store: store, policy: RetentionPolicy(olderThan: .days(30)), clock: ContinuousClock(), metricsFactory: metrics,
                logger: Logger(label: "test")
            )
            let counts = await pruner.pass()
            #expect(counts.instances == 1 && counts.outboxEvents == 1)
            #expect(try metrics.expectCounter("edda_rows_pruned_total", [("table", "instances")]).totalValue == 1)
            #expect(try metrics.expectCounter("edda_rows_pruned_total", [("table", "history")]).totalValue == 1)
            #expect(try metrics.expectCounter("edda_rows_pruned_total", [("table", "outbox")]).totalValue == 1)
        }
    }

    @Test(arguments: Backend.allCases)
    func aRunningAppPrunesEveryIntervalAndLeavesItsRunningInstancesAlone(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await instance("done", outcome: .completed(JSONPayload(json: "1")), in: store)
            try await age(["done"], days: 40, in: store)
            var configuration = EddaApp.Configuration.testing
            configuration.retention.finishedInstances = .days(30)
            configuration.retention.interval = .milliseconds(20)
            let waiter = Workflow("waiter") { (ctx: WorkflowContext, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }
            try await withTestApp(store: store, configuration: configuration) { app in
                let handle = try await app.start(waiter, 1, instanceID: "waiting")
                try await waitUntil { try await store.instance("done") == nil }
                try await age(["waiting"], days: 40, in: store)
                // Several passes later, the waiting instance is still there and still receives its event.
                let before = try await count("workflow_history", "instance_id = 'waiting'", in: store)
                try await Task.sleep(for: .milliseconds(100))
                #expect(try await store.instance("waiting")?.status == .running)
                #expect(try await count("workflow_history", "instance_id = 'waiting'", in: store) == before)
                _ = try await app.sendEvent(try CloudEvent(type: "go", source: "test", json: 5), to: "waiting")
                #expect(try await handle.result() == 5)
            }
        }
    }
}
