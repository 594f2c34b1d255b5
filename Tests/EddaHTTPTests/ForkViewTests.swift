import Edda
import EddaHTTP
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// Forking through the JSON API and the viewer: a new instance from a step, links both ways.
@Suite("HTTP: forking from a step", .timeLimit(.minutes(1)))
struct ForkViewTests {
    static let api = APITests()
    let confirmation = RetryConfirmationTests()

    /// Whether step 3 works yet.
    final class Fix: Sendable {
        private let state = Mutex(false)
        var isApplied: Bool { state.withLock { $0 } }
        func apply() { state.withLock { $0 = true } }
    }

    /// Three steps; the third fails until `fix` is applied.
    static func threeSteps(fix: Fix) -> Workflow<String, String> {
        let step = Activity("step", retry: .noRetry) { (ctx, name: String) -> String in
            if ctx.stepID == "step:3", !fix.isApplied { throw TerminalError("step 3 is broken") }
            return "\(name)\(ctx.stepID.last!)"
        }
        return Workflow("three_steps") { (ctx, name: String) -> String in
            var out = ""
            for _ in 1...3 { out += try await step(ctx, name) }
            return out
        }
    }

    @Test func theAPIForksFromAStepAndSaysWhatRunsAgain() async throws {
        let fix = Fix()
        let workflow = Self.threeSteps(fix: fix)
        try await withTestApp { app in
            await #expect(throws: WorkflowFailedError.self) { try await app.start(workflow, "x", instanceID: "o-1").result() }
            fix.apply()
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let headers: HTTPFields = [.contentType: "application/json"]
                let forked = try await client.execute(
                    uri: "/api/instances/o-1/fork", method: .post, headers: headers, body: ByteBuffer(string: #"{"from_step": "step:2", "instance_id": "f-1"}"#)
                )
                #expect(forked.status == .created, "\(String(buffer: forked.body))")
                let document = try Self.api.json(forked)
                #expect(document["instance_id"] as? String == "f-1" && document["forked_from"] as? String == "o-1")
                #expect(document["copied_records"] as? Int == 1)
                #expect(document["rerun_steps"] as? [String] == ["step:2", "step:3"])
                #expect(try await app.handle(for: workflow, instanceID: "f-1").result() == "x1x2x3")
                let shown = try Self.api.json(try await client.execute(uri: "/api/instances/f-1", method: .get))
                #expect(shown["status"] as? String == "completed")

                let unknown = try await client.execute(
                    uri: "/api/instances/o-1/fork", method: .post, headers: headers, body: ByteBuffer(string: #"{"from_step": "step:9"}"#)
                )
                #expect(unknown.status == .badRequest)
                #expect(try Self.api.errorType(unknown) == "step_not_found")
                let missing = try await client.execute(uri: "/api/instances/o-1/fork", method: .post, headers: headers, body: ByteBuffer(string: "{}"))
                #expect(missing.status == .badRequest)
                #expect(try Self.api.error(missing)["field"] as? String == "from_step")
                let nobody = try await client.execute(
                    uri: "/api/instances/nobody/fork", method: .post, headers: headers, body: ByteBuffer(string: #"{"from_step": "step:1"}"#)
                )
                #expect(nobody.status == .notFound)
                let taken = try await client.execute(
                    uri: "/api/instances/o-1/fork", method: .post, headers: headers, body: ByteBuffer(string: #"{"from_step": "step:1", "instance_id": "f-1"}"#)
                )
                #expect(taken.status == .conflict)
            }
        }
    }

    @Test func theViewerAsksFirstForksAndLinksBothWays() async throws {
        let fix = Fix()
        let workflow = Self.threeSteps(fix: fix)
        try await withTestApp { app in
            await #expect(throws: WorkflowFailedError.self) { try await app.start(workflow, "y", instanceID: "o-2").result() }
            fix.apply()
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let page = String(buffer: try await client.execute(uri: "/instances/o-2", method: .get).body)
                #expect(page.contains("<form method=\"get\" action=\"/instances/o-2/fork\"><button type=\"submit\">Fork from a step…"))

                let (cookie, token, asking) = try await confirmation.csrf(client, from: "/instances/o-2/fork?step=step:3")
                #expect(asking.contains("<h1>Fork o-2</h1>"))
                #expect(asking.contains("From <code>step:3</code>, 1 recorded step run again"), "\(asking)")
                #expect(asking.contains("<option value=\"step:3\" selected>"))
                #expect(try await app.instances().count == 1, "asking changed nothing")

                let done = try await confirmation.post(client, "/instances/o-2/fork", cookie: cookie, "csrf=\(token)&confirm=yes&step=step%3A3")
                #expect(done.status == .seeOther)
                let location = try #require(done.headers[.location])
                let forkID = String(location.dropFirst("/instances/".count))
                #expect(try await app.handle(for: workflow, instanceID: forkID).result() == "y1y2y3")

                let forkPage = String(buffer: try await client.execute(uri: location, method: .get).body)
                #expect(forkPage.contains("id=\"forked-from\"><a href=\"/instances/o-2\">o-2</a>"), "\(forkPage)")
                #expect(forkPage.contains("at step <code>step:3</code>"))
                let original = String(buffer: try await client.execute(uri: "/instances/o-2", method: .get).body)
                #expect(original.contains("<table id=\"forks\">") && original.contains("href=\"/instances/\(forkID)\""))

                let refused = try await confirmation.post(client, "/instances/o-2/fork", cookie: cookie, "csrf=\(token)&confirm=yes&step=nope%3A1")
                #expect(refused.status == .conflict)
                #expect(String(buffer: refused.body).contains("id=\"fork-refused\""))
                let forged = try await confirmation.post(client, "/instances/o-2/fork", cookie: cookie, "csrf=wrong&confirm=yes&step=step%3A1")
                #expect(String(buffer: forged.body).contains("Nothing was done"))
                #expect(try await app.instances().count == 2)
            }
        }
    }
}
