import Edda
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import EddaHTTP

/// The schedule routes of the JSON API, and the viewer's schedules page.
@Suite("HTTP: schedules", .timeLimit(.minutes(1)))
struct ScheduleAPITests {
    let api = APITests()

    func post(_ client: any TestClientProtocol, _ uri: String, _ body: String? = nil) async throws -> TestResponse {
        try await client.execute(
            uri: uri, method: .post, headers: body == nil ? [:] : [.contentType: "application/json"], body: body.map(APITests.body)
        )
    }

    @Test func createListPauseTriggerBackfillAndDelete() async throws {
        try await api.withAPI { app, client in
            let created = try await post(
                client, "/api/schedules", #"{"name": "hourly", "workflow_name": "greet", "spec": "0 * * * *", "input": [{"name": "Sched"}]}"#
            )
            #expect(created.status == .created)
            let document = try api.json(created)
            #expect(Set(document.keys) == ScheduleDocument.keys)
            #expect((document["next_ticks"] as? [String])?.count == 5 && document["overlap"] as? String == "skip")

            let again = try await post(
                client, "/api/schedules", #"{"name": "hourly", "workflow_name": "greet", "spec": "@every 60s", "input": [{"name": "Other"}]}"#
            )
            #expect(try again.status == .conflict && api.errorType(again) == "schedule_already_exists", "\(String(buffer: again.body))")
            let badSpec = try await post(client, "/api/schedules", #"{"name": "x", "workflow_name": "greet", "spec": "0 25 * * *"}"#)
            #expect(try badSpec.status == .badRequest && api.errorType(badSpec) == "invalid_schedule")
            #expect((try api.error(badSpec)["message"] as? String)?.contains("use 0–23") == true)
            let badInput = try await post(
                client, "/api/schedules", #"{"name": "x", "workflow_name": "greet", "spec": "@every 60s", "input": [{"name": ""}]}"#)
            #expect(try badInput.status == .badRequest && api.errorType(badInput) == "invalid_input")
            #expect(try await app.schedules().map(\.name) == ["hourly"], "refused schedules were not created")

            let listed = try api.json(try await client.execute(uri: "/api/schedules", method: .get))
            #expect((listed["schedules"] as? [[String: Any]])?.map { $0["name"] as? String } == ["hourly"])
            #expect(try api.json(try await post(client, "/api/schedules/hourly/pause"))["paused"] as? Bool == true)

            let triggered = try await post(client, "/api/schedules/hourly/trigger")
            #expect(triggered.status == .accepted)
            let id = try #require((try api.json(triggered)["instance_ids"] as? [String])?.first)
            // The app's scheduler starts it at its next pass, though the schedule is paused.
            let deadline = ContinuousClock.now + .seconds(10)
            while try await app.instance(id) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(try await app.handle(for: APITests.greet, instanceID: id).result() == "Hello, Sched!")
            let page = try await client.execute(uri: "/schedules", method: .get)
            let html = String(buffer: page.body)
            #expect(page.status == .ok && html.contains("hourly") && html.contains(id) && html.contains("paused"), "\(html)")

            let backfill = try await post(
                client, "/api/schedules/hourly/backfill", #"{"from": "2026-01-01T00:00:00Z", "through": "2026-01-01T01:30:00Z"}"#)
            #expect(
                try api.json(backfill)["instance_ids"] as? [String] == ["sched:hourly:2026-01-01T00:00:00Z", "sched:hourly:2026-01-01T01:00:00Z"])
            let badRange = try await post(client, "/api/schedules/hourly/backfill", #"{"from": "yesterday", "through": "2026-01-01T01:30:00Z"}"#)
            #expect(try badRange.status == .badRequest && api.error(badRange)["field"] as? String == "from")

            #expect(try await client.execute(uri: "/api/schedules/hourly", method: .delete).status == .ok)
            let gone = try await client.execute(uri: "/api/schedules/hourly", method: .get)
            #expect(try gone.status == .notFound && api.errorType(gone) == "schedule_not_found")
        }
    }

    @Test func aScheduleOnAQueueIsCreatedListedAndShownWithItAndABadQueueIs400() async throws {
        try await api.withAPI { app, client in
            app.register(Queue("reports", concurrency: 2))
            app.register(Queue("per-tenant", concurrency: 1, partitioned: true))
            let created = try await post(
                client, "/api/schedules",
                #"{"name": "queued", "workflow_name": "greet", "spec": "@every 3600s", "input": [{"name": "Q"}], "queue": "reports", "priority": 4}"#
            )
            #expect(created.status == .created, "\(String(buffer: created.body))")
            #expect(try api.json(created)["queue"] as? String == "reports" && api.json(created)["priority"] as? Int == 4)
            let stored = try #require(try await app.schedule(named: "queued"))
            #expect(stored.queue == "reports" && stored.priority == 4)
            let listed = try api.json(try await client.execute(uri: "/api/schedules", method: .get))
            let first = try #require((listed["schedules"] as? [[String: Any]])?.first)
            #expect(first["queue"] as? String == "reports" && first["priority"] as? Int == 4)
            let html = String(buffer: try await client.execute(uri: "/schedules", method: .get).body)
            #expect(html.contains("<th>Queue</th>") && html.contains(">reports</a> <small>priority 4</small>"), "\(html)")

            for (body, type) in [
                (#""queue": "nope""#, "unknown_queue"), (#""queue": "per-tenant""#, "invalid_queue_options"), (#""queue": 3"#, "invalid_body"),
            ] {
                let start = #"{"name": "bad", "workflow_name": "greet", "spec": "@every 60s", "input": [{"name": "Q"}], "#
                let refused = try await post(client, "/api/schedules", start + body + "}")
                #expect(refused.status == .badRequest, "\(body)")
                #expect(try api.errorType(refused) == type, "\(body): \(String(buffer: refused.body))")
                #expect(try api.error(refused)["field"] as? String == "queue", "\(body)")
            }
            let badPriority = try await post(
                client, "/api/schedules", #"{"name": "bad", "workflow_name": "greet", "spec": "@every 60s", "queue": "reports", "priority": 1.5}"#
            )
            #expect(try badPriority.status == .badRequest && api.error(badPriority)["field"] as? String == "priority")
            #expect(try await app.schedule(named: "bad") == nil, "nothing was created")
        }
    }
}
