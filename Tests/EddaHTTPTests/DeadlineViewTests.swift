import Edda
import EddaHTTP
import EddaSQLite
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// An instance's deadline on its page and in the JSON API, and, once it cancelled the instance, the reason.
@Suite("HTTP: deadlines", .timeLimit(.minutes(1)))
struct DeadlineViewTests {
    static let waiting = Workflow("await_forever", timeout: .seconds(3600), runTimeout: .seconds(600)) { (ctx, _: String) -> Int in
        try await ctx.waitForEvent(type: "never.comes", as: Int.self).data
    }

    func withViewer(_ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await withTestApp(store: try SQLiteStore.inMemory()) { app in
            try await Application(router: EddaHTTP(app: app).router()).test(.router) { client in try await body(app, client) }
        }
    }

    func get(_ client: any TestClientProtocol, _ uri: String) async throws -> String {
        let response = try await client.execute(uri: uri, method: .get)
        #expect(response.status == .ok)
        return String(buffer: response.body)
    }

    @Test func aRunningInstanceShowsItsTimeoutsAndDeadline() async throws {
        try await withViewer { app, client in
            _ = try await app.start(Self.waiting, "x", instanceID: "dl-1")
            let html = try await get(client, "/instances/dl-1")
            #expect(html.contains("<dt>Timeout</dt><dd id=\"deadline\">workflow timeout 1 h, run timeout 10 min · deadline in 9 min 5"), "\(html)")
            let document = try #require(try JSONSerialization.jsonObject(with: Data(try await get(client, "/api/instances/dl-1").utf8)) as? [String: Any])
            #expect(document["workflow_timeout_ms"] as? Int == 3_600_000)
            #expect(document["run_timeout_ms"] as? Int == 600_000)
            #expect((document["deadline"] as? String)?.hasPrefix("20") == true)
            #expect((document["workflow_deadline"] as? String)?.hasPrefix("20") == true)
            #expect(document["cancellation_reason"] is NSNull)
            // The OpenAPI document describes every member the API sends.
            let openAPI = try #require(try JSONSerialization.jsonObject(with: Data(try await get(client, "/api/openapi.json").utf8)) as? [String: Any])
            let schemas = try #require((openAPI["components"] as? [String: Any])?["schemas"] as? [String: Any])
            let described = try #require(((schemas["Instance"] as? [String: Any])?["properties"] as? [String: Any])?.keys)
            #expect(Set(document.keys).subtracting(described).isEmpty, "not described: \(Set(document.keys).subtracting(described))")
        }
    }

    @Test func anInstanceCancelledByItsDeadlineShowsTheReason() async throws {
        try await withViewer { app, client in
            let handle = try await app.start(Self.waiting, "x", instanceID: "dl-2", timeout: .milliseconds(30))
            await #expect(throws: WorkflowCancelledError.self) { _ = try await handle.result() }
            let html = try await get(client, "/instances/dl-2")
            #expect(html.contains("<dt>Cancelled</dt><dd id=\"cancellation-reason\" class=\"error\">deadline exceeded: workflow timeout 30 ms passed at"))
            #expect(html.contains("<dd id=\"deadline\">workflow timeout 30 ms, run timeout 10 min</dd>"), "no deadline to come once finished")
            let document = try #require(try JSONSerialization.jsonObject(with: Data(try await get(client, "/api/instances/dl-2").utf8)) as? [String: Any])
            #expect((document["cancellation_reason"] as? String)?.hasPrefix("deadline exceeded: workflow timeout 30 ms") == true)
            let error = try #require(document["error"] as? [String: Any])
            let exceeded = try #require(error["deadline_exceeded"] as? [String: Any])
            #expect(exceeded["kind"] as? String == "workflow_timeout")
            #expect(exceeded["timeout_ms"] as? Int == 30)
        }
    }

    func post(_ client: any TestClientProtocol, _ body: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        let response = try await client.execute(
            uri: "/api/workflows/await_forever/instances", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body)
        )
        return (response.status, (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]) ?? [:])
    }

    @Test func aStartThroughTheAPISetsItsTimeoutsAndABadOneIs400NamingTheField() async throws {
        try await withViewer { app, client in
            try app.register(Self.waiting)
            let (status, _) = try await post(client, #"{"input": ["x"], "instance_id": "dl-api", "timeout_ms": 90000, "run_timeout_ms": 1500}"#)
            #expect(status == .created)
            let stored = try #require(try await app.instance("dl-api"))
            #expect(stored.workflowTimeout == .milliseconds(90_000) && stored.runTimeout == .milliseconds(1500))

            // Left out: the workflow's own.
            _ = try await post(client, #"{"input": ["x"], "instance_id": "dl-own", "run_timeout_ms": null}"#)
            #expect(try await app.instance("dl-own")?.runTimeout == .seconds(600))

            let refused = [("timeout_ms", "0"), ("timeout_ms", "-5"), ("run_timeout_ms", "1.5"), ("run_timeout_ms", #""5m""#), ("timeout_ms", "true")]
            for (field, value) in refused {
                let (status, document) = try await post(client, #"{"input": ["x"], "instance_id": "dl-bad", ""# + field + #"": "# + value + "}")
                #expect(status == .badRequest, "\(field): \(value)")
                let error = document["error"] as? [String: Any]
                #expect(error?["field"] as? String == field, "\(field): \(value)")
                #expect((error?["message"] as? String)?.contains("milliseconds above zero") == true, "\(error ?? [:])")
            }
            #expect(try await app.instance("dl-bad") == nil, "nothing was started")
        }
    }
}
