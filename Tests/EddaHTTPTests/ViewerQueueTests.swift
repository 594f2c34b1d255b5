import Edda
import EddaHTTP
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// What the viewer shows of queues: the queues page, an instance's queue and place in line, the list
/// of a queue's instances.
@Suite("HTTP: queues in the viewer", .timeLimit(.minutes(1)))
struct ViewerQueueTests {
    @Test func theQueuesPageAndAQueuedInstancesPlaceInLine() async throws {
        try await ViewerTests().withViewer { app, client in
            let orders = Queue("orders", concurrency: 1, rateLimit: .init(10, per: .seconds(60)))
            app.register(orders)
            _ = try await app.start(ViewerTests.waiter, 1, instanceID: "o-1", on: orders)
            for _ in 0..<1000 where try await app.instance("o-1")?.status != .running { try await Task.sleep(for: .milliseconds(10)) }
            _ = try await app.start(ViewerTests.waiter, 2, instanceID: "o-2", on: orders, priority: 1)
            _ = try await app.start(ViewerTests.waiter, 3, instanceID: "o-3", on: orders, priority: 1)

            let queues = String(buffer: try await client.execute(uri: "/queues", method: .get).body)
            #expect(queues.contains("<td>orders</td>"), "\(queues)")
            #expect(queues.contains("<a href=\"/?queue=orders&amp;status=running\">1</a>"), "running, as a link to them")
            #expect(queues.contains("<a href=\"/?queue=orders&amp;status=queued\">2</a>"), "queued, as a link to them")
            #expect(queues.contains("<td>10 per 1 min</td>"))

            let third = String(buffer: try await client.execute(uri: "/instances/o-3", method: .get).body)
            #expect(third.contains("<dd id=\"queue\"><a href=\"/?queue=orders\">orders</a> · priority 1 · 2nd in line</dd>"), "\(third)")
            let first = String(buffer: try await client.execute(uri: "/instances/o-1", method: .get).body)
            #expect(first.contains("<dd id=\"queue\"><a href=\"/?queue=orders\">orders</a> · priority 0</dd>"), "admitted: no place in line")

            let list = String(buffer: try await client.execute(uri: "/?queue=orders&status=queued", method: .get).body)
            #expect(list.contains("id=\"on-queue\"") && list.contains("o-2") && list.contains("o-3") && !list.contains(">o-1<"), "\(list)")
            #expect(list.contains("<input type=\"hidden\" name=\"queue\" value=\"orders\">"), "the filter form keeps the queue")
        }
    }
}
