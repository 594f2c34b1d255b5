import Edda
import Foundation
import Hummingbird

/// The queues page, and what the other pages show of an instance's queue.
extension ViewerPages {
    /// Every queue declared in the store: its limits, its running and queued instances (each count
    /// a link to the list of them).
    func queuesPage() async throws -> Response {
        let queues = try await app.queues()
        var body = "<p><a href=\"/\">← All instances</a></p><h1>Queues</h1>"
        guard !queues.isEmpty else {
            body += "<p class=\"empty\">No queues. An app declares one when it registers it: <code>app.register(Queue(\"name\", concurrency: 5))</code>.</p>"
            return page(title: "Edda — queues", body: body)
        }
        body += "<table id=\"queues\"><thead><tr><th>Queue</th><th>Running</th><th>Queued</th><th>Concurrency</th><th>Per worker</th>"
        body += "<th>Rate limit</th><th>Declared</th></tr></thead><tbody>"
        for queue in queues {
            func link(_ count: Int, _ status: InstanceStatus) -> String {
                let query = HTML.query([URLQueryItem(name: "queue", value: queue.name), URLQueryItem(name: "status", value: status.rawValue)])
                return "<a href=\"/?\(HTML.escape(query))\">\(count)</a>"
            }
            body += "<tr><td>\(HTML.escape(queue.name))</td><td>\(link(queue.running, .running))</td><td>\(link(queue.queued, .queued))</td>"
            let each = queue.partitioned ? " per partition" : ""
            body += "<td>\(queue.concurrency.map { "\($0)\(each)" } ?? "—")</td><td>\(queue.workerConcurrency.map { "\($0)\(each)" } ?? "—")</td>"
            body += "<td>\(queue.rateLimit.map { HTML.escape(QueueText.rate($0)) + each } ?? "—")</td><td>\(HTML.timeTag(queue.declaredAt))</td></tr>"
        }
        body += "</tbody></table>"
        return page(title: "Edda — queues", body: body)
    }

    /// The instance page's line for its queue: the queue (a link to its instances), the priority,
    /// and while it is queued, its place in line.
    func queueSummary(of instance: WorkflowInstance) async throws -> String {
        guard let queue = instance.queue else { return "" }
        let link = "/?" + HTML.query([URLQueryItem(name: "queue", value: queue)])
        var line = "<a href=\"\(HTML.escape(link))\">\(HTML.escape(queue))</a>"
        if let partition = instance.partitionKey { line += " · partition <code>\(HTML.escape(partition))</code>" }
        line += " · priority \(instance.priority)"
        if instance.status == .queued, let position = try await app.queuePosition(of: instance.instanceID) {
            line += " · \(QueueText.position(position))"
        }
        return "<dt>Queue</dt><dd id=\"queue\">\(line)</dd>"
    }
}
