@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaPostgres
import EddaTestSupport
import Foundation
import PostgresNIO
import Testing

/// What a claim reads: its cost must not grow with the instances other workers hold.
@Suite("PostgreSQL: claims read no leased row", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresClaimPlanTests {
    @Test func aClaimAmong50000LeasedInstancesReadsOnlyWhatItTakes() async throws {
        try await PostgresTestDatabase.withStore { store in
            let t = store.tables
            // 50,000 instances leased by a live worker elsewhere, 3 whose lease lapsed, 3 ready.
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token,
                            lease_expires_at, created_at, updated_at)
                        SELECT 'leased-' || n, 'w', 'test', 'running', '[]', 'other', 1,
                            (extract(epoch from now()) * 1000)::bigint + 3600000, n, n
                        FROM generate_series(1, 50000) AS n
                        """
                )
            )
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token,
                            lease_expires_at, created_at, updated_at)
                        SELECT 'lapsed-' || n, 'w', 'test', 'running', '[]', 'dead', 1, 1000 + n, 60000 + n, 60000 + n
                        FROM generate_series(1, 3) AS n
                        UNION ALL
                        SELECT 'ready-' || n, 'w', 'test', 'running', '[]', NULL, 0, NULL, 70000 + n, 70000 + n
                        FROM generate_series(1, 3) AS n
                        """
                )
            )
            try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.instances)"))

            let request = ClaimRequest(lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 10, workflowNames: ["w"])
            let claim = PostgresStore.claimQuery(request, tables: t)
            let plan = try await Self.analyzedPlan(of: claim, on: store)
            let read = try Self.rowsRead(fromPlan: plan, relation: "workflow_instances")
            // Before: the ready index held leased rows, and every claim filtered all 50,000 of them.
            #expect(read < 100, "a claim read \(read) instance rows; the plan: \(plan)")

            // It took the lapsed and the ready ones, and none of the live leases.
            #expect(try await Self.instancesLeased(to: "me", on: store) == ["lapsed-1", "lapsed-2", "lapsed-3", "ready-1", "ready-2", "ready-3"])
        }
    }

    @Test func aVersionedClaimAmong50000ReadyInstancesOfAnotherVersionReadsOnlyWhatItTakes() async throws {
        try await PostgresTestDatabase.withStore { store in
            let t = store.tables
            // 50,000 ready instances of version 1, older than everything else, and 20,000 due (released
            // until a time that has passed); then 3 ready and 1 due of version 2, and 2 unversioned.
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at,
                            app_version)
                        SELECT 'v1-' || n, 'w', 'test', 'running', '[]', 0, n, n, '1' FROM generate_series(1, 50000) AS n
                        UNION ALL
                        SELECT 'v2-' || n, 'w', 'test', 'running', '[]', 0, 60000 + n, 60000 + n, '2' FROM generate_series(1, 3) AS n
                        UNION ALL
                        SELECT 'unversioned-' || n, 'w', 'test', 'running', '[]', 0, 70000 + n, 70000 + n, NULL FROM generate_series(1, 2) AS n
                        """
                )
            )
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at,
                            ready_at, app_version)
                        SELECT 'due-v1-' || n, 'w', 'test', 'running', '[]', 0, n, n, n, '1' FROM generate_series(1, 20000) AS n
                        UNION ALL
                        SELECT 'due-v2', 'w', 'test', 'running', '[]', 0, 90000, 90000, 30000, '2'
                        """
                )
            )
            // A lapsed lease of each version (their workers died): only version 2's is taken over.
            try await store.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token,
                            lease_expires_at, created_at, updated_at, app_version)
                        VALUES ('lapsed-v1', 'w', 'test', 'running', '[]', 'dead', 1, 1000, 80001, 80001, '1'),
                               ('lapsed-v2', 'w', 'test', 'running', '[]', 'dead', 1, 1000, 80002, 80002, '2')
                        """
                )
            )
            try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.instances)"))

            let request = ClaimRequest(
                lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 10, workflowNames: ["w"], applicationVersions: ["2", "3"]
            )
            let plan = try await Self.analyzedPlan(of: PostgresStore.claimQuery(request, tables: t), on: store)
            let read = try Self.rowsRead(fromPlan: plan, relation: "workflow_instances")
            // Read on the rows, the version filter would pass over all 50,000 older ready instances of
            // version 1, and the 20,000 due ones.
            #expect(read < 100, "a versioned claim read \(read) instance rows; the plan: \(plan)")
            #expect(
                try await Self.instancesLeased(to: "me", on: store) == ["due-v2", "lapsed-v2", "unversioned-1", "unversioned-2", "v2-1", "v2-2", "v2-3"]
            )
            #expect(try await Self.instancesLeased(to: "dead", on: store) == ["lapsed-v1"], "another version's lapsed lease is left for its workers")
            // An unversioned worker takes any version, oldest first, still through the ready index.
            let any = ClaimRequest(lease: LeaseRequest(owner: "any", duration: .seconds(30)), limit: 10, workflowNames: ["w"])
            let anyPlan = try await Self.analyzedPlan(of: PostgresStore.claimQuery(any, tables: t), on: store)
            let anyRead = try Self.rowsRead(fromPlan: anyPlan, relation: "workflow_instances")
            #expect(anyRead < 100, "an unversioned claim read \(anyRead) instance rows; the plan: \(anyPlan)")
            // (version 1's earliest due ones)
            #expect(try await Self.instancesLeased(to: "any", on: store) == (1...10).map { "due-v1-\($0)" }.sorted())
        }
    }

    @Test func anAdmissionReadsItsQueuesRowsOnlyNotTheOthers() async throws {
        try await PostgresTestDatabase.withStore { store in
            let t = store.tables
            // 50,000 instances on no queue, leased elsewhere; 5,000 queued on another queue; on "q",
            // 2 admitted a minute ago and 100,000 queued.
            try await store.client.query(PostgresQuery(unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token,
                            lease_expires_at, created_at, updated_at, queue_name, priority)
                        SELECT 'plain-' || n, 'w', 'test', 'running', '[]', 'other', 1,
                            (extract(epoch from now()) * 1000)::bigint + 3600000, n, n, NULL, 0
                        FROM generate_series(1, 50000) AS n
                        UNION ALL
                        SELECT 'elsewhere-' || n, 'w', 'test', 'queued', '[]', NULL, 0, NULL, n, n, 'other', 0
                        FROM generate_series(1, 5000) AS n
                        UNION ALL
                        SELECT 'admitted-' || n, 'w', 'test', 'running', '[]', 'other', 1,
                            (extract(epoch from now()) * 1000)::bigint + 3600000, n, n, 'q', 0
                        FROM generate_series(1, 2) AS n
                        UNION ALL
                        SELECT 'queued-' || lpad(n::text, 6, '0'), 'w', 'test', 'queued', '[]', NULL, 0, NULL, 100000 + n, 100000 + n, 'q', n % 3
                        FROM generate_series(1, 100000) AS n
                        """))
            try await store.client.query(PostgresQuery(unsafeSQL: """
                        UPDATE \(t.instances) SET admitted_at = (extract(epoch from now()) * 1000)::bigint - 60000
                        WHERE instance_id LIKE 'admitted-%'
                        """))
            try await store.declareQueues([
                Queue("q", concurrency: 5, rateLimit: .init(100, per: .seconds(3600))), Queue("other", concurrency: 5),
            ])
            try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.instances)"))

            let request = ClaimRequest(lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 10, workflowNames: ["w"], queues: ["q"])
            let plan = try await Self.analyzedPlan(of: PostgresStore.admissionQuery(request, tables: t), on: store)
            let read = try Self.rowsRead(fromPlan: plan, relation: "workflow_instances")
            #expect(read < 100, "an admission read \(read) instance rows; the plan: \(plan)")
            let time = try Self.executionTime(fromPlan: plan)
            print("PostgreSQL: an admission among 100,000 queued instances executed in \(time) ms, reading \(read) instance rows")

            // Three places were free: the three oldest queued at priority 0.
            #expect(try await Self.instancesLeased(to: "me", on: store) == ["queued-000003", "queued-000006", "queued-000009"])
        }
    }

    @Test func aVersionedAdmissionAmong50000QueuedInstancesOfAnotherVersionReadsOnlyWhatItAdmits() async throws {
        try await PostgresTestDatabase.withStore { store in
            let t = store.tables
            // On "q": 50,000 queued instances of version 1, ahead of 3 of version 2 and 2 unversioned.
            try await store.client.query(PostgresQuery(unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at,
                            queue_name, priority, app_version)
                        SELECT 'v1-' || n, 'w', 'test', 'queued', '[]', 0, n, n, 'q', 0, '1' FROM generate_series(1, 50000) AS n
                        UNION ALL
                        SELECT 'v2-' || n, 'w', 'test', 'queued', '[]', 0, 60000 + n, 60000 + n, 'q', 0, '2' FROM generate_series(1, 3) AS n
                        UNION ALL
                        SELECT 'unversioned-' || n, 'w', 'test', 'queued', '[]', 0, 70000 + n, 70000 + n, 'q', 0, NULL
                        FROM generate_series(1, 2) AS n
                        """))
            try await store.declareQueues([Queue("q", concurrency: 4)])
            try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.instances)"))

            let request = ClaimRequest(
                lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 10, workflowNames: ["w"], queues: ["q"],
                applicationVersions: ["2", "3"]
            )
            let plan = try await Self.analyzedPlan(of: PostgresStore.admissionQuery(request, tables: t), on: store)
            let read = try Self.rowsRead(fromPlan: plan, relation: "workflow_instances")
            #expect(read < 100, "a versioned admission read \(read) instance rows; the plan: \(plan)")
            // Four places: version 2's three, then the oldest unversioned one; none of version 1's.
            #expect(try await Self.instancesLeased(to: "me", on: store) == ["unversioned-1", "v2-1", "v2-2", "v2-3"])
        }
    }

    @Test func aPartitionedAdmissionReadsAboutThreeRowsPerPartitionNotEveryQueuedOne() async throws {
        try await PostgresTestDatabase.withStore { store in
            let t = store.tables
            // 1,000 customers with 100 queued each (100,000); the first 990 have one running already.
            try await store.client.query(PostgresQuery(unsafeSQL: """
                        INSERT INTO \(t.instances) (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token,
                            lease_expires_at, created_at, updated_at, queue_name, partition_key, admitted_at)
                        SELECT 'running-' || c, 'w', 'test', 'running', '[]', 'other', 1,
                            (extract(epoch from now()) * 1000)::bigint + 3600000, c, c, 'per_customer', 'customer-' || lpad(c::text, 4, '0'), c
                        FROM generate_series(1, 990) AS c
                        UNION ALL
                        SELECT 'queued-' || c || '-' || n, 'w', 'test', 'queued', '[]', NULL, 0, NULL, 100000 + n * 1000 + c, 100000 + n,
                            'per_customer', 'customer-' || lpad(c::text, 4, '0'), NULL
                        FROM generate_series(1, 1000) AS c, generate_series(1, 100) AS n
                        """))
            try await store.declareQueues([Queue("per_customer", concurrency: 1, partitioned: true)])
            try await store.client.query(PostgresQuery(unsafeSQL: "ANALYZE \(t.instances)"))

            let request = ClaimRequest(
                lease: LeaseRequest(owner: "me", duration: .seconds(30)), limit: 20, workflowNames: ["w"], queues: ["per_customer"]
            )
            let plan = try await Self.analyzedPlan(of: PostgresStore.admissionQuery(request, tables: t), on: store)
            let read = try Self.rowsRead(fromPlan: plan, relation: "workflow_instances")
            let time = try Self.executionTime(fromPlan: plan)
            print("PostgreSQL: a partitioned admission among 100,000 queued instances in 1,000 partitions executed in \(time) ms, reading \(read) rows")
            #expect(read < 5_000, "a partitioned admission read \(read) instance rows; the plan: \(plan)")
            // The ten customers with room: each one's oldest.
            #expect(try await Self.instancesLeased(to: "me", on: store) == (991...1000).map { "queued-\($0)-1" }.sorted())
        }
    }

    /// The IDs of the instances leased to `owner`, in order.
    static func instancesLeased(to owner: String, on store: PostgresStore) async throws -> [String] {
        let rows = try await store.client.query(
            "SELECT instance_id FROM \(unescaped: store.tables.instances) WHERE lease_owner = \(owner) ORDER BY instance_id"
        )
        var ids: [String] = []
        for try await id in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    /// `EXPLAIN (ANALYZE, FORMAT JSON)` of `query`: it runs, and the plan says what it read.
    static func analyzedPlan(of query: PostgresQuery, on store: PostgresStore) async throws -> String {
        var plan = ""
        for try await line in try await store.client.query(
            PostgresQuery(unsafeSQL: "EXPLAIN (ANALYZE, FORMAT JSON) " + query.sql, binds: query.binds)
        ).decode(String.self) {
            plan += line
        }
        return plan
    }

    /// The plan's "Execution Time", in milliseconds.
    static func executionTime(fromPlan json: String) throws -> Double {
        let root = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return ((root as? [[String: Any]])?.first?["Execution Time"] as? Double) ?? -1
    }

    /// Rows the plan's scans of `relation` read: those they returned and those their filters dropped.
    static func rowsRead(fromPlan json: String, relation: String) throws -> Int {
        let root = try JSONSerialization.jsonObject(with: Data(json.utf8))
        var total = 0
        func walk(_ node: Any) {
            if let list = node as? [Any] { list.forEach(walk) }
            guard let node = node as? [String: Any] else { return }
            if let plan = node["Plan"] { walk(plan) }
            if (node["Relation Name"] as? String) == relation, (node["Node Type"] as? String)?.contains("Scan") == true {
                let loops = node["Actual Loops"] as? Int ?? 1
                let rows = (node["Actual Rows"] as? Int ?? 0) + (node["Rows Removed by Filter"] as? Int ?? 0)
                total += rows * loops
            }
            (node["Plans"] as? [Any])?.forEach(walk)
        }
        walk(root)
        return total
    }
}
