import Edda
import EddaHTTP
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Starting on a queue through the JSON API, and reading the app's queues.
@Suite("HTTP: queues through the JSON API", .timeLimit(.minutes(1)))
struct APIQueueTests {
    static let api = APITests()
    static let orders = Queue("orders", concurrency: 1)

    func withQueueAPI(_ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await Self.api.withAPI { app, client in
            app.register(Self.orders)
            try await body(app, client)
        }
    }

    @Test func aStartOnARegisteredQueueWaitsQueuedAndADeduplicationIDInUseIs409() async throws {
        let api = Self.api
        try await withQueueAPI { app, client in
            // checkout waits for an event: the first holds the queue's one place, and its ID.
            let first = try await api.start(
                client, #"{"input": ["A-1"], "instance_id": "c-1", "queue": "orders", "deduplication_id": "A-1"}"#, workflow: "checkout"
            )
            #expect(first.status == .created, "\(String(buffer: first.body))")
            let second = try await api.start(client, #"{"input": ["A-2"], "instance_id": "c-2", "queue": "orders", "priority": 3}"#, workflow: "checkout")
            #expect(second.status == .created)
            let stored = try #require(try await app.instance("c-2"))
            #expect(stored.queue == "orders" && stored.priority == 3)
            for _ in 0..<500 where try await app.instance("c-1")?.status != .running { try await Task.sleep(for: .milliseconds(10)) }
            #expect(try await app.instance("c-1")?.status == .running)
            #expect(try await app.instance("c-2")?.status == .queued, "the queue's one place is taken")

            let shown = try await client.execute(uri: "/api/instances/c-2", method: .get)
            let document = try api.json(shown)
            #expect(document["queue"] as? String == "orders" && document["priority"] as? Int == 3 && document["status"] as? String == "queued")
            #expect(document["queue_position"] as? Int == 1)
            #expect(document["queue_deadline"] is NSNull && document["queue_timeout_ms"] is NSNull)

            // One that will not wait more than 200 ms: still queued then, it is cancelled with the reason.
            let impatient = try await api.start(
                client, #"{"input": ["A-9"], "instance_id": "c-9", "queue": "orders", "queue_timeout_ms": 200}"#, workflow: "checkout"
            )
            #expect(impatient.status == .created, "\(String(buffer: impatient.body))")
            let waiting = try api.json(try await client.execute(uri: "/api/instances/c-9", method: .get))
            #expect(waiting["queue_timeout_ms"] as? Int == 200)
            #expect(waiting["queue_deadline"] is String)
            for _ in 0..<500 where try await app.instance("c-9")?.status != .cancelled { try await Task.sleep(for: .milliseconds(10)) }
            let cancelled = try api.json(try await client.execute(uri: "/api/instances/c-9", method: .get))
            #expect(cancelled["status"] as? String == "cancelled")
            #expect((cancelled["cancellation_reason"] as? String)?.contains("still queued when its queue timeout 200 ms passed") == true, "\(cancelled)")
            let noQueueTimeout = try await api.start(client, #"{"input": ["A-8"], "instance_id": "c-8", "queue_timeout_ms": 0, "queue": "orders"}"#, workflow: "checkout")
            #expect(noQueueTimeout.status == .badRequest)
            #expect(try api.error(noQueueTimeout)["field"] as? String == "queue_timeout_ms")

            let listed = try api.json(try await client.execute(uri: "/api/queues", method: .get))
            let queues = try #require(listed["queues"] as? [[String: Any]])
            #expect(queues.count == 1 && queues.first?["name"] as? String == "orders", "\(queues)")
            #expect(queues.first?["running"] as? Int == 1 && queues.first?["queued"] as? Int == 1 && queues.first?["rate_limit"] is NSNull)
            let onQueue = try api.json(try await client.execute(uri: "/api/instances?queue=orders&status=queued", method: .get))
            #expect((onQueue["instances"] as? [[String: Any]])?.compactMap { $0["instance_id"] as? String } == ["c-2"])

            let held = try await api.start(
                client, #"{"input": ["A-1"], "instance_id": "c-3", "queue": "orders", "deduplication_id": "A-1"}"#, workflow: "checkout"
            )
            #expect(held.status == .conflict)
            #expect(try api.errorType(held) == "deduplication_id_in_use")
            #expect(((try api.error(held)["message"] as? String) ?? "").contains("c-1"), "it names the holder")
            #expect(try await app.instance("c-3") == nil)
        }
    }

    @Test func anUnknownQueueOrAQueueOptionWithoutAQueueIs400AndStartsNothing() async throws {
        let api = Self.api
        try await withQueueAPI { app, client in
            let unknown = try await api.start(client, #"{"input": [{"name": "Ada"}], "instance_id": "u-1", "queue": "ordres"}"#)
            #expect(unknown.status == .badRequest)
            #expect(try api.errorType(unknown) == "unknown_queue")
            #expect(try api.error(unknown)["field"] as? String == "queue")
            #expect(((try api.error(unknown)["message"] as? String) ?? "").contains("Registered: orders"), "it lists the app's queues")

            let noQueue = try await api.start(client, #"{"input": [{"name": "Ada"}], "instance_id": "u-2", "priority": 1}"#)
            #expect(noQueue.status == .badRequest)
            #expect(try api.error(noQueue)["field"] as? String == "queue")

            for priority in [#""high""#, "true", "1.5"] {
                let bad = try await api.start(client, #"{"input": [{"name": "Ada"}], "instance_id": "u-3", "queue": "orders", "priority": "# + priority + "}")
                #expect(bad.status == .badRequest, "priority \(priority)")
                #expect(try api.error(bad)["field"] as? String == "priority", "priority \(priority)")
            }
            for id in ["u-1", "u-2", "u-3"] { #expect(try await app.instance(id) == nil, "\(id) was not started") }
        }
    }
}
