import Edda
import Foundation
import Hummingbird

/// The viewer's schedules page: each schedule with its spec, policy, next ticks and its recent
/// instances (those its ticks started, newest first).
extension ViewerPages {
    /// How many recent instances a schedule shows.
    static let recentPerSchedule = 5

    func schedulesPage() async throws -> Response {
        let schedules = try await app.schedules()
        var body = "<p><a href=\"/\">← All instances</a></p><h1>Schedules</h1>"
        guard !schedules.isEmpty else {
            return page(title: "Edda — schedules", body: body + "<p class=\"empty\">No schedules.</p>")
        }
        let headings = ["Schedule", "Workflow", "Spec", "Overlap", "Queue", "Next ticks", "Recent instances"]
        body += "<table><thead><tr>" + headings.map { "<th>\($0)</th>" }.joined() + "</tr></thead><tbody>"
        for schedule in schedules {
            let next = schedule.paused ? "<span class=\"badge\">paused</span>" : schedule.upcomingTicks(3).map(HTML.time).joined(separator: "<br>")
            var recent = ""
            for instance in try await recentInstances(of: schedule) {
                recent += "<a href=\"/instances/\(HTML.pathComponent(instance.instanceID))\">\(HTML.escape(instance.instanceID))</a> "
                recent += HTML.badge(instance.displayStatus) + "<br>"
            }
            body += "<tr><td>\(HTML.escape(schedule.name))</td><td>\(HTML.escape(schedule.workflowName))</td>"
            body += "<td><code>\(HTML.escape(schedule.expression))</code> \(HTML.escape(schedule.timeZone))</td><td>\(schedule.overlap.rawValue)</td>"
            body += "<td>\(Self.queueCell(schedule))</td>"
            body += "<td>\(next.isEmpty ? "none" : next)</td><td>\(recent.isEmpty ? "none yet" : recent)</td></tr>"
        }
        body += "</tbody></table>"
        return page(title: "Edda — schedules", body: body)
    }

    /// Where a schedule's ticks start: its queue (linked to the queue's instances) and priority, or "none".
    static func queueCell(_ schedule: ScheduleRecord) -> String {
        guard let queue = schedule.queue else { return "none" }
        let link = "<a href=\"/?\(HTML.escape(HTML.query([URLQueryItem(name: "queue", value: queue)])))\">\(HTML.escape(queue))</a>"
        return link + (schedule.priority == 0 ? "" : " <small>priority \(schedule.priority)</small>")
    }

    /// The newest instances the schedule's ticks started: those of its workflow whose ID is one of its ticks'.
    func recentInstances(of schedule: ScheduleRecord) async throws -> [WorkflowInstance] {
        let prefix = Schedule.instanceIDPrefix(schedule: schedule.name)
        let page = try await app.instances(matching: InstanceQuery(workflowName: schedule.workflowName, limit: 200))
        return Array(page.instances.filter { $0.instanceID.hasPrefix(prefix) }.prefix(Self.recentPerSchedule))
    }
}
