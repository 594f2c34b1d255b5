@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaPostgres
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

/// A queue shared by workers on one PostgreSQL database.
@Suite("PostgreSQL: queues across workers", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresQueueTests {
    /// What the activities saw: how many ran at once, here and per worker, and how many of the
    /// queue's instances the store held running while they ran.
    struct Observed: Sendable {
        var now = 0
        var most = 0
        var nowByWorker: [String: Int] = [:]
        var mostByWorker: [String: Int] = [:]
        var mostRunningInStore = 0
        var ranOn: Set<String> = []
    }

    @Test func threeWorkersNeverRunMoreThanTheQueuesConcurrency() async throws {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        let queue = Queue("limited", concurrency: 2, workerConcurrency: 1)
        let observed = Mutex(Observed())
        var apps: [EddaApp] = []
        var workflows: [Workflow<Int, Int>] = []
        var stores: [PostgresStore] = []
        for worker in ["worker-a", "worker-b", "worker-c"] {
            let store = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
            let step = Activity("step") { (ctx, n: Int) -> Int in
                observed.withLock { seen in
                    seen.now += 1
                    seen.most = max(seen.most, seen.now)
                    seen.nowByWorker[worker, default: 0] += 1
                    seen.mostByWorker[worker] = max(seen.mostByWorker[worker] ?? 0, seen.nowByWorker[worker] ?? 0)
                    seen.ranOn.insert(worker)
                }
                defer {
                    observed.withLock { seen in
                        seen.now -= 1
                        seen.nowByWorker[worker, default: 0] -= 1
                    }
                }
                // A round trip while it runs: the store's own count of the queue's running instances.
                let running = try await store.statusCounts(matching: InstanceQuery(workflowName: "queued_work"))[.running] ?? 0
                observed.withLock { $0.mostRunningInStore = max($0.mostRunningInStore, running) }
                return n * 2
            }
            let workflow = Workflow("queued_work") { (ctx, n: Int) -> Int in
                let doubled = try await step(ctx, n)
                return try await step(ctx, doubled)
            }
            var configuration = EddaApp.Configuration.testing
            configuration.workerID = worker
            configuration.pollInterval = .milliseconds(20)
            let app = EddaApp(store: store, serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet)
            try app.register(workflow)
            app.register(queue)
            apps.append(app)
            workflows.append(workflow)
            stores.append(store)
        }
        let (first, second, third) = (apps[0], apps[1], apps[2])
        let work = workflows[0]
        let opened = stores
        let results = try await third.run { _ in
            try await second.run { _ in
                try await first.run { first in
                    for store in opened { try await store.ready() }
                    var handles: [WorkflowHandle<Int>] = []
                    for n in 0..<12 {
                        handles.append(try await first.start(work, n, instanceID: "queued-\(n)", on: queue))
                    }
                    var results: [Int] = []
                    for handle in handles { results.append(try await handle.result()) }
                    return results
                }
            }
        }
        #expect(results == (0..<12).map { $0 * 4 })
        let seen = observed.withLock { $0 }
        #expect(seen.most <= 2, "at most the queue's concurrency ran at once")
        #expect(seen.mostRunningInStore <= 2, "the store never held more than the queue's concurrency running")
        #expect(seen.mostByWorker.values.allSatisfy { $0 <= 1 }, "at most the worker concurrency ran on each worker: \(seen.mostByWorker)")
        #expect(seen.ranOn.count >= 2, "the queue's work spread over the workers: \(seen.ranOn)")
        try await PostgresTestDatabase.withStore(schema: schema) { _ in }
    }
}
