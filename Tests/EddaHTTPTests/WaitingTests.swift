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

/// What an instance waits for (page, API, list), parent ↔ child links, paging back and forth,
/// sending an event from the page, and cancelling a filtered set after a confirmation.
@Suite("HTTP: waiting, children, paging, events and bulk cancel", .timeLimit(.minutes(1)))
struct WaitingTests {
    static let payment = Workflow("await_payment") { (ctx, _: String) -> Int in
        try await ctx.waitForEvent(type: "payment.completed", as: Int.self, timeout: .seconds(300)).data
    }
    static let child = Workflow("child_work") { (ctx, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }
    static let parent = Workflow("parent_work") { (ctx, n: Int) -> Int in try await ctx.runChild(child, n) }

    func withViewer(store: SQLiteStore? = nil, _ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await withTestApp(store: try store ?? SQLiteStore.inMemory()) { app in
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in try await body(app, client) }
        }
    }

    /// Polls (every 10 ms, for 5 s at most) until `condition` holds.
    func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<500 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("never happened: \(what)")
    }

    func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (HTTPResponse.Status, String, HTTPFields) {
        let response = try await client.execute(uri: uri, method: .get)
        return (response.status, String(buffer: response.body), response.headers)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// The `edda_csrf` cookie a page set, and its token.
    func csrf(_ headers: HTTPFields) throws -> (cookie: String, token: String) {
        let cookie = String(try #require(headers[.setCookie]).split(separator: ";")[0])
        return (cookie, String(cookie.dropFirst("edda_csrf=".count)))
    }

    func post(_ client: any TestClientProtocol, _ uri: String, cookie: String?, form: String) async throws -> (HTTPResponse.Status, String, HTTPFields) {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let cookie { headers[.cookie] = cookie }
        let response = try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: form))
        return (response.status, String(buffer: response.body), response.headers)
    }

    /// The `href` of the first link whose text contains `text`, unescaped.
    func link(_ html: String, containing text: String) -> String? {
        for anchor in html.components(separatedBy: "<a href=\"").dropFirst() {
            guard let end = anchor.firstIndex(of: "\"") else { continue }
            let rest = anchor[end...]
            guard let close = rest.range(of: "</a>"), rest[..<close.lowerBound].contains(text) else { continue }
            return String(anchor[..<end]).replacingOccurrences(of: "&amp;", with: "&")
        }
        return nil
    }

    @Test func anInstancePageSaysWhatItWaitsForAndSendsItAnEvent() async throws {
        try await withViewer { app, client in
            let handle = try await app.start(Self.payment, "order-1", instanceID: "pay-1")
            try await eventually("pay-1 waits") { try await app.instance("pay-1")?.waitingFor != nil }

            let (status, html, headers) = try await get(client, "/instances/pay-1")
            #expect(status == .ok)
            #expect(html.contains("class=\"badge waiting\">waiting</span>"))
            #expect(html.contains("Waiting for event <code>payment.completed</code> · timeout in 4 min 5"), "\(html)")
            #expect(html.contains("(of 5 min)"))
            #expect(html.contains("<time datetime="), "the deadline as a time")
            #expect(html.contains("name=\"type\" size=\"30\" value=\"payment.completed\""), "the form offers the awaited type")

            // The API says the same; the list filters and counts waiting apart from running.
            let document = try json(try await get(client, "/api/instances/pay-1").1)
            #expect(document["status"] as? String == "waiting")
            let wait = try #require(document["waiting_for"] as? [String: Any])
            #expect(wait["kind"] as? String == "event" && wait["awaited"] as? String == "payment.completed")
            #expect(wait["timeout_seconds"] as? Double == 300)
            let list = try json(try await get(client, "/api/instances?status=waiting").1)
            #expect((list["instances"] as? [[String: Any]])?.compactMap { $0["instance_id"] as? String } == ["pay-1"])
            #expect((list["counts"] as? [String: Int])?["waiting"] == 1 && (list["counts"] as? [String: Int])?["running"] == 1, "waiting ones run too")
            #expect(try await get(client, "/?status=waiting").1.contains("timeout in 4 min"), "the list says what each one waits for")

            // Bad JSON: the error next to the data field, what was typed kept, nothing sent.
            let (cookie, token) = try csrf(headers)
            let bad = try await post(client, "/instances/pay-1/events", cookie: cookie, form: "csrf=\(token)&type=payment.completed&data=%7Bamount%3A")
            #expect(bad.0 == .unprocessableContent)
            #expect(bad.1.contains("id=\"event-data-error\"") && bad.1.contains("not valid JSON"), "\(bad.1)")
            #expect(bad.1.contains("{amount:</textarea>"), "the data typed is shown again")
            let noType = try await post(client, "/instances/pay-1/events", cookie: cookie, form: "csrf=\(token)&type=+&data=1")
            #expect(noType.0 == .unprocessableContent && noType.1.contains("id=\"event-type-error\""))
            let reserved = try await post(client, "/instances/pay-1/events", cookie: cookie, form: "csrf=\(token)&type=edda.child%2Fx&data=1")
            #expect(reserved.0 == .unprocessableContent && reserved.1.contains("reserved"))
            let forged = try await post(client, "/instances/pay-1/events", cookie: nil, form: "csrf=\(token)&type=payment.completed&data=1")
            #expect(forged.0 == .forbidden, "the form's token is checked")
            #expect(try await app.instance("pay-1")?.displayStatus == .waiting, "nothing was sent")

            let sent = try await post(client, "/instances/pay-1/events", cookie: cookie, form: "csrf=\(token)&type=payment.completed&data=42")
            #expect(sent.0 == .seeOther)
            #expect(sent.2[.location] == "/instances/pay-1?sent=delivered")
            #expect(try await handle.result() == 42)
            #expect(try await get(client, "/instances/pay-1?sent=delivered").1.contains("id=\"event-sent\""))
        }
    }

    @Test func theAPISendsAnEventToOneInstanceAndNamesTheFieldAtFault() async throws {
        try await withViewer { app, client in
            let handle = try await app.start(Self.payment, "order-2", instanceID: "pay 2/x")
            func send(_ id: String, _ body: String, type: String = "application/json") async throws -> (HTTPResponse.Status, [String: Any]) {
                let response = try await client.execute(
                    uri: "/api/instances/\(id)/events", method: .post, headers: [.contentType: type], body: ByteBuffer(string: body)
                )
                return (response.status, try json(String(buffer: response.body)))
            }
            func field(_ document: [String: Any]) -> String? { (document["error"] as? [String: Any])?["field"] as? String }
            #expect(try await send("pay%202%2Fx", #"{"type": "payment.completed"}"#, type: "text/plain").0 == .unsupportedMediaType)
            let unknownKey = try await send("pay%202%2Fx", #"{"type": "payment.completed", "payload": 1}"#)
            #expect(unknownKey.0 == .badRequest && field(unknownKey.1) == "payload")
            let noType = try await send("pay%202%2Fx", #"{"data": 1}"#)
            #expect(noType.0 == .badRequest && field(noType.1) == "type")
            let missing = try await send("nope", #"{"type": "payment.completed"}"#)
            #expect(missing.0 == .notFound && field(missing.1) == "id")

            let sent = try await send("pay%202%2Fx", #"{"type": "payment.completed", "data": 7, "id": "evt-1"}"#)
            #expect(sent.0 == .accepted)
            #expect(sent.1["id"] as? String == "evt-1" && sent.1["instance_id"] as? String == "pay 2/x")
            #expect(try await handle.result() == 7)
            let finished = try await send("pay%202%2Fx", #"{"type": "payment.completed", "data": 8}"#)
            #expect(finished.0 == .conflict, "a finished instance takes no event")
        }
    }

    @Test func parentAndChildLinkToEachOtherWithTheirStatusesThroughEncodedIDs() async throws {
        try await withViewer { app, client in
            let handle = try await app.start(Self.parent, 5, instanceID: "parent 1")
            try await eventually("the parent waits for its child") { try await app.instance("parent 1")?.waitingFor?.kind == .child }
            let childID = try #require(try await app.instance("parent 1")?.waitingFor?.awaited)
            #expect(childID.hasPrefix("parent 1/"), "a child's ID holds its parent's and a /")
            try await eventually("the child waits") { try await app.instance(childID)?.waitingFor != nil }

            let (_, parentPage, _) = try await get(client, "/instances/parent%201")
            #expect(parentPage.contains("Waiting for child <code>\(childID)</code> to finish"), "\(parentPage)")
            #expect(parentPage.contains("<h2>Children</h2>"))
            // Follow the viewer's own link to the child.
            let childLink = try #require(link(parentPage, containing: childID), "no link to the child in: \(parentPage)")
            #expect(childLink.hasPrefix("/instances/parent%201%2F"), "\(childLink)")
            let (childStatus, childPage, _) = try await get(client, childLink)
            #expect(childStatus == .ok)
            #expect(childPage.contains("Waiting for event <code>go</code>"))
            let children = try #require(parentPage.components(separatedBy: "id=\"children\"").last)
            #expect(children.contains("class=\"badge waiting\">waiting</span>"), "the child's status beside its link")
            // And back to the parent, with its status.
            let parentSection = try #require(childPage.components(separatedBy: "<dd id=\"parent\">").last)
            #expect(parentSection.contains("class=\"badge waiting\">waiting</span>"))
            let parentLink = try #require(link(childPage, containing: "parent 1"))
            #expect(parentLink == "/instances/parent%201")
            #expect(try await get(client, parentLink).0 == .ok)

            // The list of all children, through the parent filter.
            let listed = try await get(client, "/?parent=parent%201").1
            #expect(listed.contains("Children of") && listed.contains(childID))

            _ = try await app.sendEvent(CloudEvent(type: "go", source: "test", json: 9), to: childID)
            #expect(try await handle.result() == 9)
            let done = try await get(client, "/instances/parent%201").1
            #expect(try #require(done.components(separatedBy: "id=\"children\"").last).contains("class=\"badge completed\">completed</span>"))
        }
    }

    @Test func theListPagesBackAndForthAndCancelsAFilteredSetAfterAConfirmation() async throws {
        let store = try SQLiteStore.inMemory()
        for index in 0..<55 {
            try await store.seedInstance(String(format: "s-%02d", index), workflowName: "seeded")
        }
        try await store.seedInstance("other", workflowName: "another")
        try await withViewer(store: store) { app, client in
            let first = try await get(client, "/?workflow=seeded").1
            #expect(!first.contains("Previous page"))
            let next = try #require(link(first, containing: "Next page"))
            let second = try await get(client, next).1
            #expect(second.components(separatedBy: "href=\"/instances/s-").count - 1 == 5, "55 = 50 + 5")
            let previous = try #require(link(second, containing: "Previous page"), "\(second)")
            let firstAgain = try await get(client, previous).1
            #expect(firstAgain.components(separatedBy: "href=\"/instances/s-").count - 1 == 50)
            #expect(firstAgain.contains("s-54") && !firstAgain.contains("s-04\""), "the first page again, newest first")

            // Bulk cancel: the list's button leads to a page that states the count; only its form cancels.
            let button = try #require(first.components(separatedBy: "class=\"bulk\"").last)
            #expect(button.contains("Cancel all 55 unfinished matching"))
            let (status, confirm, headers) = try await get(client, "/cancel?workflow=seeded")
            #expect(status == .ok && confirm.contains("Cancel 55 instances?"))
            let (cookie, token) = try csrf(headers)
            let forged = try await post(client, "/cancel?workflow=seeded", cookie: nil, form: "csrf=\(token)&confirm=yes")
            #expect(forged.0 == .forbidden)
            let unconfirmed = try await post(client, "/cancel?workflow=seeded", cookie: cookie, form: "csrf=\(token)")
            #expect(unconfirmed.1.contains("Cancel 55 instances?"), "a post without the confirmation shows the page again")
            #expect(try await app.instance("s-00")?.cancelRequested == false)

            let done = try await post(client, "/cancel?workflow=seeded", cookie: cookie, form: "csrf=\(token)&confirm=yes")
            #expect(done.0 == .ok && done.1.contains("Cancellation requested for 55 instances"), "\(done.1)")
            #expect(try await app.instance("s-00")?.cancelRequested == true)
            #expect(try await app.instance("s-54")?.cancelRequested == true)
            #expect(try await app.instance("other")?.cancelRequested == false, "outside the filter")

            let unfiltered = try await get(client, "/cancel")
            #expect(unfiltered.0 == .badRequest && unfiltered.1.contains("at least one filter"))
        }
    }
}
