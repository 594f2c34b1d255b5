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

/// Instance IDs that are not plain words — a child's (`parent/edda.child:1`), an event-started
/// instance's (`fulfil/e-9@/shop`), with spaces and non-ASCII characters — through every page and
/// route, following the viewer's own links.
@Suite("HTTP: encoded instance IDs in the viewer and the API", .timeLimit(.minutes(1)))
struct EncodedIDTests {
    static let child = Workflow("encoded_child") { (ctx, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }
    static let parent = Workflow("encoded_parent") { (ctx, n: Int) -> Int in try await ctx.startChild(child, n).result() }
    static let fulfil = Workflow("encoded_fulfil") { (ctx, order: Int) -> String in "order \(order) fulfilled" }

    static let parentID = "Ünï cødé @parent ✓"
    static let childID = parentID + "/edda.child:1"

    func withViewer(_ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await withTestApp { app in
            try app.register(Self.parent)
            try app.register(Self.child)
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in try await body(app, client) }
        }
    }

    /// Waits (a few milliseconds at a time) until `id` exists.
    static func instance(_ id: String, in app: EddaApp) async throws -> WorkflowInstance {
        for _ in 0..<500 {
            if let instance = try await app.instance(id) { return instance }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw CancellationError()
    }

    /// The target of the link whose text is `text`, as a browser would request it (HTML entities decoded).
    static func link(to text: String, in html: String) -> String? {
        let marker = "\">\(escape(text))</a>"
        guard let end = html.range(of: marker) else { return nil }
        guard let start = html[..<end.lowerBound].range(of: "href=\"", options: .backwards) else { return nil }
        return unescape(String(html[start.upperBound..<end.lowerBound]))
    }

    /// The `action` of the form posting to a path ending in `suffix`.
    static func formAction(endingWith suffix: String, in html: String) -> String? {
        html.components(separatedBy: "action=\"").dropFirst().map { unescape(String($0.prefix { $0 != "\"" })) }.first { $0.hasSuffix(suffix) }
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }

    /// One path segment, encoded by the test itself (everything but letters and digits).
    static func segment(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
    }

    /// Posts a viewer form (Cancel, Retry, Start) with the page's CSRF token and cookie, and `fields`.
    static func submit(_ action: String, page: TestResponse, client: any TestClientProtocol, fields: [URLQueryItem] = []) async throws -> TestResponse
    {
        let html = String(buffer: page.body)
        let cookie = String(try #require(page.headers[.setCookie]).split(separator: ";")[0])
        let token = try #require(html.range(of: "name=\"csrf\" value=\"").map { String(html[$0.upperBound...].prefix { $0 != "\"" }) })
        var form = URLComponents()
        form.queryItems = [URLQueryItem(name: "csrf", value: token)] + fields
        return try await client.execute(
            uri: action, method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .cookie: cookie],
            body: ByteBuffer(string: form.percentEncodedQuery!)
        )
    }

    @Test func aChildWithSlashAtSpaceAndUnicodeIsReachableByEveryLinkAndRoute() async throws {
        try await withViewer { app, client in
            _ = try await app.start(Self.parent, 1, instanceID: Self.parentID)
            _ = try await Self.instance(Self.childID, in: app)

            // The list links to both; each link opens its instance's page.
            let list = String(buffer: try await client.execute(uri: "/", method: .get).body)
            let childLink = try #require(Self.link(to: Self.childID, in: list), "the list shows the child")
            #expect(!childLink.dropFirst("/instances/".count).contains("/"), "the ID is one path segment: \(childLink)")
            let childPage = try await client.execute(uri: childLink, method: .get)
            #expect(childPage.status == .ok, "\(childLink): \(String(buffer: childPage.body))")
            let childHTML = String(buffer: childPage.body)
            #expect(childHTML.contains("<h1>\(Self.escape(Self.childID)) "))

            // The child's page links to its parent, and the history filter links work.
            let parentLink = try #require(Self.link(to: Self.parentID, in: childHTML))
            let parentPage = try await client.execute(uri: parentLink, method: .get)
            #expect(parentPage.status == .ok)
            #expect(String(buffer: parentPage.body).contains("<h1>\(Self.escape(Self.parentID)) "))
            let failedOnly = try #require(Self.link(to: "Failed only", in: childHTML))
            let filtered = try await client.execute(uri: failedOnly, method: .get)
            #expect(filtered.status == .ok)
            let showAll = try #require(Self.link(to: "Show all", in: String(buffer: filtered.body)))
            #expect(try await client.execute(uri: showAll, method: .get).status == .ok)

            // The API, with the ID encoded as a client would.
            let one = try await client.execute(uri: "/api/instances/\(Self.segment(Self.childID))", method: .get)
            #expect(one.status == .ok)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(one.body.readableBytesView)) as? [String: Any])
            #expect(document["instance_id"] as? String == Self.childID)
            #expect(document["parent_instance_id"] as? String == Self.parentID)
            #expect(try await client.execute(uri: "/api/instances/\(Self.segment(Self.childID))/history", method: .get).status == .ok)

            // Cancel from the child's page: the form posts to the child, and its answer leads back to it.
            let pageResponse = try await client.execute(uri: childLink, method: .get)
            let action = try #require(Self.formAction(endingWith: "/cancel", in: String(buffer: pageResponse.body)))
            let cancelled = try await Self.submit(action, page: pageResponse, client: client)
            #expect(cancelled.status == .seeOther)
            #expect(try await app.instance(Self.childID)?.cancelRequested == true, "the cancel reached the child")
            let back = try await client.execute(uri: try #require(cancelled.headers[.location]), method: .get)
            #expect(back.status == .ok)
            #expect(String(buffer: back.body).contains("<h1>\(Self.escape(Self.childID)) "))

            // The API's cancel of the parent, by its encoded ID.
            let apiCancel = try await client.execute(uri: "/api/instances/\(Self.segment(Self.parentID))/cancel", method: .post)
            #expect(apiCancel.status == .accepted || apiCancel.status == .conflict, "\(String(buffer: apiCancel.body))")
        }
    }

    @Test func anEventStartedInstanceAndAFailedOneAreReachableAndRetriable() async throws {
        try await withViewer { app, client in
            try app.startOnEvent("order.created", Self.fulfil)
            let event = #"{"specversion": "1.0", "id": "e-9", "source": "/shop", "type": "order.created", "data": 17}"#
            let accepted = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"], body: ByteBuffer(string: event)
            )
            #expect(accepted.status == .accepted)
            let eventID = "encoded_fulfil/e-9@/shop"
            _ = try await app.handle(for: Self.fulfil, instanceID: eventID).result()
            let list = String(buffer: try await client.execute(uri: "/", method: .get).body)
            let link = try #require(Self.link(to: eventID, in: list))
            let page = try await client.execute(uri: link, method: .get)
            #expect(page.status == .ok)
            #expect(String(buffer: page.body).contains("order 17 fulfilled"))
            let api = try await client.execute(uri: "/api/instances/\(Self.segment(eventID))", method: .get)
            #expect(api.status == .ok)

            // A failed instance with such an ID: Retry from its page, then through the API.
            let attempts = Atomic<Int>(0)
            let flaky = Activity("encoded_flaky", retry: .noRetry) { (ctx) -> Int in
                if attempts.add(1, ordering: .relaxed).newValue != 2 { throw TerminalError("fails but the second time") }
                return 7
            }
            let workflow = Workflow("encoded_flaky_wf") { (ctx) -> Int in try await flaky(ctx) }
            let failedID = "retry/ñ 1@x"
            await #expect(throws: WorkflowFailedError.self) { try await app.start(workflow, instanceID: failedID).result() }
            let failedLink = try #require(Self.link(to: failedID, in: String(buffer: try await client.execute(uri: "/", method: .get).body)))
            let failedPage = try await client.execute(uri: failedLink, method: .get)
            let retry = try #require(Self.formAction(endingWith: "/retry", in: String(buffer: failedPage.body)))
            // Retry asks first: its confirmation page, reached by the encoded ID, holds the form that retries.
            let confirmation = try await client.execute(uri: retry, method: .get)
            #expect(confirmation.status == .ok, "\(retry): \(String(buffer: confirmation.body))")
            let confirm = try #require(Self.formAction(endingWith: "/retry", in: String(buffer: confirmation.body)))
            let retried = try await Self.submit(confirm, page: confirmation, client: client, fields: [URLQueryItem(name: "confirm", value: "yes")])
            #expect(retried.status == .seeOther)
            #expect(try await client.execute(uri: try #require(retried.headers[.location]), method: .get).status == .ok)
            #expect(try await app.handle(for: workflow, instanceID: failedID).result() == 7)
            let again = try await client.execute(uri: "/api/instances/\(Self.segment(failedID))/retry", method: .post)
            #expect(again.status == .conflict, "found (and not failed any more), not 404")
        }
    }

    @Test func aStartFormWithSuchAnInstanceIDLeadsToItsPage() async throws {
        try await withViewer { app, client in
            let form = try await client.execute(uri: "/workflows/encoded_child/start", method: .get)
            let action = try #require(Self.formAction(endingWith: "/start", in: String(buffer: form.body)))
            let started = try await Self.submit(
                action, page: form, client: client, fields: [.init(name: "a0", value: "3"), .init(name: "edda_instance_id", value: "form/ü @1")]
            )
            #expect(started.status == .seeOther)
            let page = try await client.execute(uri: try #require(started.headers[.location]), method: .get)
            #expect(page.status == .ok)
            #expect(String(buffer: page.body).contains("<h1>form/ü @1 "))
            #expect(try await app.instance("form/ü @1") != nil)
        }
    }

    static let oddlyNamed = Workflow("orders/ship ü@1") { (ctx, n: Int) -> Int in n * 2 }

    @Test func aWorkflowNameWithSlashSpaceAndUnicodeHasItsStartFormAndRoute() async throws {
        try await withViewer { app, client in
            try app.register(Self.oddlyNamed)
            let index = String(buffer: try await client.execute(uri: "/workflows", method: .get).body)
            let link = try #require(Self.link(to: Self.oddlyNamed.name, in: index))
            let form = try await client.execute(uri: link, method: .get)
            #expect(form.status == .ok, "\(link)")
            let html = String(buffer: form.body)
            #expect(html.contains("<h1>Start \(Self.escape(Self.oddlyNamed.name))</h1>"))
            let action = try #require(Self.formAction(endingWith: "/start", in: html))
            let started = try await Self.submit(
                action, page: form, client: client, fields: [.init(name: "a0", value: "4"), .init(name: "edda_instance_id", value: "odd-1")]
            )
            #expect(started.status == .seeOther)
            #expect(try await app.handle(for: Self.oddlyNamed, instanceID: "odd-1").result() == 8)

            let api = try await client.execute(
                uri: "/api/workflows/\(Self.segment(Self.oddlyNamed.name))/instances", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"input": [5], "instance_id": "odd-2"}"#)
            )
            #expect(api.status == .created, "\(String(buffer: api.body))")
            #expect(try await app.handle(for: Self.oddlyNamed, instanceID: "odd-2").result() == 10)
        }
    }

    @Test func aPathSegmentThatIsNotValidPercentEncodingIsA400() async throws {
        try await withViewer { _, client in
            let response = try await client.execute(uri: "/api/instances/%E0%A4%A", method: .get)
            #expect(response.status == .badRequest)
            let error = try #require(
                (try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])?["error"] as? [String: Any]
            )
            #expect(error["type"] as? String == "invalid_path")
            #expect(error["field"] as? String == "id")
        }
    }
}
