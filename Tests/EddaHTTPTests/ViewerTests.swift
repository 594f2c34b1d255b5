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

/// The viewer's pages, rendered on the server: content, escaping, the Cancel form's protection.
@Suite("HTTP: viewer pages", .timeLimit(.minutes(1)))
struct ViewerTests {
    static let shout = Activity("shout") { (ctx, text: String) -> String in text.uppercased() }
    static let echo = Workflow("echo") { (ctx, text: String) -> String in try await shout(ctx, text) }
    static let waiter = Workflow("waiter") { (ctx, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }

    func withViewer(_ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await withTestApp { app in
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in try await body(app, client) }
        }
    }

    @Test func theListAndAnInstancePageShowUserDataEscaped() async throws {
        try await withViewer { app, client in
            let attack = "<script>alert('x')</script>"
            _ = try await app.start(Self.echo, attack, instanceID: "e-1").result()
            let list = try await client.execute(uri: "/?status=completed&refresh=5", method: .get)
            #expect(list.status == .ok)
            let page = String(buffer: list.body)
            #expect(page.contains("e-1"))
            #expect(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "auto-refresh keeps the URL, so the filters")
            #expect(page.contains("<option value=\"completed\" selected>"))

            let instance = try await client.execute(uri: "/instances/e-1", method: .get)
            let html = String(buffer: instance.body)
            #expect(instance.status == .ok)
            #expect(!html.contains(attack), "user data reached the page unescaped")
            #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
            #expect(html.contains("<div class=\"tl\" id=\"timeline\">") && html.contains("<span class=\"tl-label\" title=\"shout:1\">shout</span>"), "the timeline")
            #expect(html.contains("<span class=\"j-str\">&quot;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;</span>"), "the input as a JSON tree")
            #expect(instance.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            let missing = try await client.execute(uri: "/instances/nope", method: .get)
            #expect(missing.status == .notFound)
        }
    }

    @Test func theTimelineTellsReplayedFromExecutedSteps() async throws {
        let store = try SQLiteStore.inMemory()
        // A run that died after its first step; the next run replays it and executes the second.
        try await store.seedInstance("r-1", workflowName: "two_steps", input: try JSONPayload.encode(["x"]), history: [
            HistoryEvent(instanceID: "r-1", stepID: "shout:1", position: 1, name: "shout", kind: .activityCompleted, payload: JSONPayload(json: "\"X\"")),
        ])
        try await Task.sleep(for: .milliseconds(5))   // the next claim comes in a later millisecond than the record
        let twoSteps = Workflow("two_steps") { (ctx: WorkflowContext, text: String) -> String in
            let first = try await Self.shout(ctx, text)
            return try await Self.shout(ctx, first + "!")
        }
        try await withTestApp(store: store) { app in
            try app.register(twoSteps)
            #expect(try await app.handle(for: twoSteps, instanceID: "r-1").result() == "X!")
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let html = String(buffer: try await client.execute(uri: "/instances/r-1", method: .get).body)
                #expect(html.contains("The latest run began at"))
                let rows = html.components(separatedBy: "<tr").dropFirst().filter { $0.contains("shout:") }
                #expect(rows.count == 2)
                #expect(rows.first?.contains("shout:1") == true && rows.first?.contains(">replayed<") == true, "\(rows)")
                #expect(rows.last?.contains("shout:2") == true && rows.last?.contains("<td>executed</td>") == true, "\(rows)")
            }
        }
    }

    @Test func cancelNeedsTheFormsTokenAndASameSiteOrigin() async throws {
        try await withViewer { app, client in
            let handle = try await app.start(Self.waiter, 0, instanceID: "w-1")
            let page = try await client.execute(uri: "/instances/w-1", method: .get)
            let cookie = try #require(page.headers[.setCookie]).split(separator: ";")[0]
            let token = String(cookie.dropFirst("edda_csrf=".count))
            #expect(String(buffer: page.body).contains("value=\"\(token)\""))

            let forged = try await client.execute(
                uri: "/instances/w-1/cancel", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "csrf=guess")
            )
            #expect(forged.status == .forbidden)
            let crossSite = try await client.execute(
                uri: "/instances/w-1/cancel", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded", .cookie: String(cookie), .origin: "http://127.0.0.1:3000"],
                body: ByteBuffer(string: "csrf=\(token)")
            )
            #expect(crossSite.status == .forbidden)
            #expect(try await app.instance("w-1")?.cancelRequested == false, "a refused form changed nothing")

            let accepted = try await client.execute(
                uri: "/instances/w-1/cancel", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded", .cookie: String(cookie)], body: ByteBuffer(string: "csrf=\(token)")
            )
            #expect(accepted.status == .seeOther)
            await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
        }
    }
}
