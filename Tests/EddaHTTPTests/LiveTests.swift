import Edda
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import EddaHTTP

/// The live pages: the event stream an unfinished instance's page and the list follow, behind the
/// same Host check and token as every page, and the script that swaps in what changed.
@Suite("HTTP: live pages (Server-Sent Events)", .timeLimit(.minutes(1)))
struct LiveTests {
    static let payment = Workflow("live_payment") { (ctx, _: String) -> Int in
        try await ctx.waitForEvent(type: "payment.completed", as: Int.self, timeout: .seconds(300)).data
    }

    static let twoSteps = Workflow("live_two_steps") { (ctx, _: Int) -> Int in
        let a = try await ctx.waitForEvent(type: "a", as: Int.self).data
        return a + (try await ctx.waitForEvent(type: "b", as: Int.self).data)
    }
    static let parent = Workflow("live_parent") { (ctx, n: Int) -> Int in try await ctx.runChild(twoSteps, n) }

    /// A live server (polling every 20 ms) and a raw client that sets `Host` and headers as it likes;
    /// it reads a response to its end.
    func withLiveServer(
        _ configuration: EddaHTTP.Configuration = .init(livePollInterval: .milliseconds(20)),
        _ body:
            @escaping @Sendable (
                EddaApp, _ port: Int, _ send: @escaping @Sendable (String, String?, HTTPFields) async throws -> TestClient.Response
            ) async throws -> Void
    ) async throws {
        try await withTestApp { app in
            let server = Application(
                router: EddaHTTP(app: app, configuration: configuration).router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await server.test(.live) { client in
                let port = try #require(client.port)
                try await TestClient.withClient(host: "127.0.0.1", port: port) { raw in
                    try await body(app, port) { uri, authority, headers in
                        try await raw.execute(TestClient.Request(uri, method: .get, authority: authority ?? "127.0.0.1:\(port)", headers: headers))
                    }
                }
            }
        }
    }

    /// The live server's configuration (polling every 20 ms), counting its open streams: a test
    /// moves an instance once its stream is open, not after a pause.
    func countingStreams() -> (EddaHTTP.Configuration, LiveStreamCounter) {
        let counter = LiveStreamCounter()
        var configuration = EddaHTTP.Configuration(livePollInterval: .milliseconds(20))
        configuration.liveStreamCounter = counter
        return (configuration, counter)
    }

    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<3000 {  // 30 s at most: generous for a loaded machine, free when it happens at once
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("never happened: \(what)")
    }

    /// The events of a stream: (name, data), comments left out.
    func events(_ text: String) -> [(String, String)] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var (name, data) = ("", "")
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data = String(line.dropFirst(6)) }
            }
            return name.isEmpty ? nil : (name, data)
        }
    }

    @Test func theStreamFollowsTheInstanceFromWaitingToCompletedAndEnds() async throws {
        let (configuration, counter) = countingStreams()
        try await withLiveServer(configuration) { app, _, send in
            _ = try await app.start(Self.payment, "order-1", instanceID: "live/1 ü")
            try await eventually("it waits") { try await app.instance("live/1 ü")?.waitingFor != nil }

            let started = ContinuousClock.now
            async let stream = send("/instances/live%2F1%20%C3%BC/live", nil, [:])
            // The stream sends the state at once; the event arrives while it is open.
            try await eventually("the stream is open") { counter.count == 1 }
            try await Task.sleep(for: .milliseconds(100))
            _ = try await app.sendEvent(try CloudEvent(type: "payment.completed", source: "test", json: 42), to: "live/1 ü")
            let response = try await stream
            #expect(response.head.status == .ok)
            #expect(response.head.headerFields[.contentType] == "text/event-stream")
            #expect(response.head.headerFields[.cacheControl] == "no-store")
            let text = String(buffer: response.body ?? ByteBuffer())
            let events = self.events(text)
            // The state at once: waiting — or, when the request reached the server only after the
            // event (a loaded machine), already running again.
            #expect(
                events.first?.0 == "change"
                    && ["{\"status\":\"waiting\"}", "{\"status\":\"running\"}"].contains(events.first?.1 ?? ""), "\(text)"
            )
            #expect(events.last?.0 == "end" && events.last?.1 == "{\"status\":\"completed\"}", "\(text)")
            #expect(events.filter { $0.0 == "end" }.count == 1)
            #expect(text.hasPrefix("retry: "))
            #expect(ContinuousClock.now - started < .seconds(10), "the stream ended when the instance finished")

            // A finished instance's stream ends at once; an unknown one is a 404.
            let again = try await send("/instances/live%2F1%20%C3%BC/live", nil, [:])
            #expect(self.events(String(buffer: again.body ?? ByteBuffer())).map { $0.0 } == ["end"])
            let unknown = try await send("/instances/nope/live", nil, [:])
            #expect(unknown.head.status == .notFound)
        }
    }

    /// A parent's page shows its children's statuses: its stream sends a change when a child
    /// moves while the parent itself still waits.
    @Test func aParentsStreamFollowsItsChildren() async throws {
        try await withLiveServer { app, _, send in
            _ = try await app.start(Self.parent, 1, instanceID: "live-parent")
            var child: String?
            try await eventually("the parent and its child wait") {
                guard let wait = try await app.instance("live-parent")?.waitingFor, wait.kind == .child, let id = wait.awaited else { return false }
                child = id
                return try await app.instance(id)?.waitingFor?.awaited == "a"
            }
            let childID = try #require(child)
            let html = String(buffer: try await send("/instances/live-parent", nil, [:]).body ?? ByteBuffer())
            let since = try #require(html.components(separatedBy: "live?since=").dropFirst().first?.split(separator: "\"").first)

            async let stream = send("/instances/live-parent/live?since=\(since)", nil, [:])
            try await Task.sleep(for: .milliseconds(300))
            _ = try await app.sendEvent(try CloudEvent(type: "a", source: "test", json: 1), to: childID)
            try await eventually("the child waits for b") { try await app.instance(childID)?.waitingFor?.awaited == "b" }
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await app.instance("live-parent")?.waitingFor?.kind == .child, "the parent still waits")
            _ = try await app.sendEvent(try CloudEvent(type: "b", source: "test", json: 2), to: childID)
            let text = String(buffer: try await stream.body ?? ByteBuffer())
            let events = self.events(text)
            #expect(events.first.map { $0 == ("change", "{\"status\":\"waiting\"}") } == true, "the child's move, the parent waiting: \(text)")
            #expect(events.last?.0 == "end", "\(text)")
        }
    }

    /// A browser that goes away (here curl, killed once its stream is open) ends its stream at
    /// the next poll: the server does not keep reading the store for it.
    @Test func aStreamWhoseClientHasGoneStops() async throws {
        let curl = try #require(["/usr/bin/curl", "/usr/local/bin/curl"].first { FileManager.default.isExecutableFile(atPath: $0) }, "no curl")
        let (configuration, counter) = countingStreams()
        try await withLiveServer(configuration) { app, port, _ in
            _ = try await app.start(Self.payment, "order-4", instanceID: "live-4")
            try await eventually("it waits") { try await app.instance("live-4")?.waitingFor != nil }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: curl)
            // --max-time only bounds a stuck run; the test ends curl itself once its stream is open.
            process.arguments = ["-s", "-N", "-o", "/dev/null", "--max-time", "60", "http://127.0.0.1:\(port)/instances/live-4/live"]
            let exited = AsyncStream.makeStream(of: Void.self)
            process.terminationHandler = { _ in exited.continuation.yield(); exited.continuation.finish() }
            try process.run()
            try await eventually("the stream is open") { counter.count == 1 }
            // SIGKILL: a child of Foundation's Process may have SIGTERM blocked.
            kill(process.processIdentifier, SIGKILL)
            for await _ in exited.stream {}
            try await eventually("the stream stopped after its client left") { counter.count == 0 }
            #expect(try await app.instance("live-4")?.waitingFor != nil, "the instance still waits: the stream ended because curl left")
        }
    }

    @Test func theStreamIsRefusedWithoutTheTokenAndForAnotherHost() async throws {
        try await withLiveServer(.init(bearerToken: "s3cret", livePollInterval: .milliseconds(20))) { app, port, send in
            _ = try await app.start(Self.payment, "order-2", instanceID: "live-2")
            try await eventually("it waits") { try await app.instance("live-2")?.waitingFor != nil }

            let anonymous = try await send("/instances/live-2/live", nil, [:])
            #expect(anonymous.head.status == .unauthorized)
            #expect(anonymous.head.headerFields[.contentType] != "text/event-stream")
            let list = try await send("/live", nil, [:])
            #expect(list.head.status == .unauthorized)
            let forged = try await send("/instances/live-2/live", nil, [.cookie: "edda_session=made-up"])
            #expect(forged.head.status == .unauthorized)
            let rebound = try await send("/instances/live-2/live", "evil.example:\(port)", [.authorization: "Bearer s3cret"])
            #expect(rebound.head.status == .misdirectedRequest)
            #expect(!String(buffer: rebound.body ?? ByteBuffer()).contains("event:"))

            // With the token, the stream of a finished instance: its state, then the end.
            _ = try await app.sendEvent(try CloudEvent(type: "payment.completed", source: "test", json: 1), to: "live-2")
            try await eventually("it completes") { try await app.instance("live-2")?.status == .completed }
            let allowed = try await send("/instances/live-2/live", nil, [.authorization: "Bearer s3cret"])
            #expect(allowed.head.status == .ok)
            #expect(String(buffer: allowed.body ?? ByteBuffer()).contains("event: end\ndata: {\"status\":\"completed\"}"))
        }
    }

    @Test func livePagesNameTheirStreamAndServeTheScriptUnderTheStrictPolicy() async throws {
        let (configuration, counter) = countingStreams()
        try await withLiveServer(configuration) { app, _, send in
            _ = try await app.start(Self.payment, "order-3", instanceID: "live 3")
            try await eventually("it waits") { try await app.instance("live 3")?.waitingFor != nil }

            let page = try await send("/instances/live%203", nil, [:])
            let html = String(buffer: page.body ?? ByteBuffer())
            #expect(html.contains("<body data-live=\"/instances/live%203/live?since="), "\(html)")
            #expect(html.contains("<script src=\"/static/live.js\" defer></script>"))
            #expect(html.contains("<span id=\"live\" class=\"live\" hidden></span>"), "the indicator, hidden until the script runs")
            for part in ["title", "summary", "actions", "children-part", "history-part"] {
                #expect(html.contains("id=\"\(part)\" data-live-part"), "\(part)")
            }
            #expect(!html.contains("<script>"), "no inline script")
            let csp = try #require(page.head.headerFields[.contentSecurityPolicy])
            #expect(csp == "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'")

            let script = try await send("/static/live.js", nil, [:])
            #expect(script.head.status == .ok)
            #expect(script.head.headerFields[.contentType] == "text/javascript; charset=utf-8")
            #expect(String(buffer: script.body ?? ByteBuffer()).contains("new EventSource(source)"))

            let list = String(buffer: try await send("/?workflow=live_payment&refresh=5", nil, [:]).body ?? ByteBuffer())
            #expect(list.contains("<body data-live=\"/live?workflow=live_payment&amp;refresh=5&amp;since="), "\(list)")
            #expect(list.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "the refresh without JavaScript stays")
            #expect(list.contains("<div id=\"instances\" data-live-part>"))

            // The stream the page names starts from what the page showed: nothing until a change.
            let since = try #require(html.components(separatedBy: "live?since=").dropFirst().first?.split(separator: "\"").first)
            let started = ContinuousClock.now
            async let stream = send("/instances/live%203/live?since=\(since)", nil, [:])
            // Open, and a few polls past its first read (on a loaded machine the request can take
            // longer than any fixed pause), before the instance moves.
            try await eventually("the stream is open") { counter.count == 1 }
            try await Task.sleep(for: .milliseconds(100))
            _ = try await app.sendEvent(try CloudEvent(type: "payment.completed", source: "test", json: 3), to: "live 3")
            let text = String(buffer: try await stream.body ?? ByteBuffer())
            let events = self.events(text)
            #expect(!events.contains { $0.1 == "{\"status\":\"waiting\"}" }, "no change before the instance moved: \(text)")
            #expect(events.last?.0 == "end", "\(text)")
            #expect(text.contains(":\n\n"), "comments while nothing changed")
            #expect(ContinuousClock.now - started < .seconds(10))

            // A finished instance's page is not live.
            try await eventually("it completes") { try await app.instance("live 3")?.status == .completed }
            let done = String(buffer: try await send("/instances/live%203", nil, [:]).body ?? ByteBuffer())
            #expect(!done.contains("data-live=") && !done.contains("live.js"))
        }
    }
}

extension BrowserTests {
    static let livePayment = Workflow("live_browser_payment") { (ctx: WorkflowContext, _: String) -> Int in
        try await ctx.waitForEvent(type: "payment.completed", as: Int.self, timeout: .seconds(600)).data
    }

    /// The viewer's router, telling the test each path asked for: the test moves the instance once
    /// the browser's script has opened the page's stream.
    struct Watched<Responder: HTTPResponder>: HTTPResponder where Responder.Context == BasicRequestContext {
        let responder: Responder
        let paths: AsyncStream<String>.Continuation
        func respond(to request: Request, context: BasicRequestContext) async throws -> Response {
            paths.yield(request.uri.path)
            return try await responder.respond(to: request, context: context)
        }
    }

    /// Loads `path` in the browser, which keeps the page open for 3 s of virtual time (which stands
    /// still while a request, such as the stream, is open: a stream here lasts 1 s, then the
    /// browser connects again); once its stream is open, `move` runs; then the DOM as the page
    /// shows it.
    func liveDOM(
        _ chromium: String, _ app: EddaApp, path: String, stream: String, move: @escaping @Sendable () async throws -> Void
    ) async throws -> String {
        let (paths, seen) = AsyncStream.makeStream(of: String.self)
        var configuration = EddaHTTP.Configuration(livePollInterval: .milliseconds(50))
        configuration.liveStreamLifetime = .seconds(1)
        let router = EddaHTTP(app: app, configuration: configuration).router()
        let server = Application(
            responder: Watched(responder: router.buildResponder(), paths: seen), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        return try await server.test(.live) { client in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            async let dom = Chromium.run(chromium, ["--virtual-time-budget=3000", "--dump-dom", "\(base)\(path)"])
            for await asked in paths where asked == stream { break }
            try await move()
            return try await dom
        }
    }

    /// A waiting instance's page, open in the browser, turns completed when the instance gets its
    /// event, without a reload: the script follows the stream and swaps the parts that changed.
    @Test func anInstancePageUpdatesLiveWithoutAReload() async throws {
        let chromium = try #require(Chromium.path, "chromium is not installed: .ci/run installs it (apt-get install chromium)")
        try await withTestApp { app in
            _ = try await app.start(Self.livePayment, "ORD-3003", instanceID: "ORD 3003")
            for _ in 0..<500 where try await app.instance("ORD 3003")?.waitingFor == nil { try await Task.sleep(for: .milliseconds(10)) }
            let page = try await liveDOM(chromium, app, path: "/instances/ORD%203003", stream: "/instances/ORD%203003/live") {
                _ = try await app.sendEvent(try CloudEvent(type: "payment.completed", source: "test", json: 7), to: "ORD 3003")
            }
            #expect(page.contains("class=\"badge completed\">completed</span>"), "\(page)")
            #expect(!page.contains("class=\"badge waiting\">waiting</span>"), "\(page)")
            #expect(page.contains("<dt>Output</dt><dd><div class=\"json\">"), "the summary was swapped too")
            #expect(page.contains("<span class=\"j-num\">7</span></div></dd>"), "the summary was swapped too")
            #expect(!page.contains("Send an event"), "the actions of a waiting instance are gone")
            #expect(page.contains("<span id=\"live\" class=\"live off\">finished</span>"), "the indicator says the stream ended")
            #expect(page.contains("<body data-live=\"/instances/ORD%203003/live?since="), "the same document: it was not reloaded")
        }
    }

    /// The list, open in the browser, shows an instance's new status without a reload, with the
    /// "live" indicator on.
    @Test func theListUpdatesLiveWithoutAReload() async throws {
        let chromium = try #require(Chromium.path, "chromium is not installed: .ci/run installs it (apt-get install chromium)")
        try await withTestApp { app in
            _ = try await app.start(Self.livePayment, "ORD-3004", instanceID: "ORD-3004")
            for _ in 0..<500 where try await app.instance("ORD-3004")?.waitingFor == nil { try await Task.sleep(for: .milliseconds(10)) }
            let page = try await liveDOM(chromium, app, path: "/?workflow=live_browser_payment", stream: "/live") {
                _ = try await app.sendEvent(try CloudEvent(type: "payment.completed", source: "test", json: 8), to: "ORD-3004")
            }
            let rows = try #require(page.components(separatedBy: "<div id=\"instances\" data-live-part=\"\">").last)
            #expect(rows.contains("class=\"badge completed\">completed</span>"), "\(page)")
            #expect(!rows.contains("class=\"badge waiting\">waiting</span>"), "\(page)")
            #expect(page.contains("<span id=\"live\" class=\"live "), "the indicator shows: \(page)")
            #expect(page.contains("value=\"live_browser_payment\""), "the filter form stays as it was")
        }
    }
}
