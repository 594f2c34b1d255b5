import Edda
import EddaHTTP
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The viewer's own errors are HTML pages in its layout, with the error next to the field at fault;
/// the same errors under `/api/` stay JSON.
@Suite("HTTP: the viewer's error pages", .timeLimit(.minutes(1)))
struct ViewerErrorTests {
    static let echo = Workflow("echo") { (ctx, text: String) -> String in text }
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    func withViewer(
        _ configuration: EddaHTTP.Configuration = .init(), _ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withTestApp { app in
            try app.register(Self.echo)
            let server = Application(router: EddaHTTP(app: app, configuration: configuration).router())
            try await server.test(.router) { client in try await body(app, client) }
        }
    }

    /// The page's HTML, after checking that it is one (not the API's JSON).
    func html(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        let text = String(buffer: response.body)
        #expect(response.headers[.contentType]?.hasPrefix("text/html") == true, "\(text)", sourceLocation: sourceLocation)
        #expect(text.hasPrefix("<!doctype html>") && !text.contains("{\"error\""), "\(text)", sourceLocation: sourceLocation)
        return text
    }

    /// A cookie and the matching form token, as a page of the viewer sets them.
    func csrf(_ client: any TestClientProtocol) async throws -> (cookie: String, token: String) {
        let page = try await client.execute(uri: "/workflows/echo/start", method: .get)
        let cookie = String(try #require(page.headers[.setCookie]).split(separator: ";")[0])
        return (cookie, String(cookie.dropFirst("edda_csrf=".count)))
    }

    @Test func aBadDateFilterIsMarkedAtItsFieldAndTheAPIStaysJSON() async throws {
        try await withViewer { app, client in
            _ = try await app.start(Self.echo, "x", instanceID: "e-1").result()
            let response = try await client.execute(uri: "/?created_from=yesterday&workflow=echo", method: .get)
            #expect(response.status == .badRequest)
            let page = html(response)
            #expect(page.contains("<h1>Workflow instances</h1>"), "the list's layout, with its filter form")
            #expect(
                page.contains("name=\"created_from\" placeholder=\"2026-11-25\" size=\"18\" value=\"yesterday\"></label> <span class=\"field-error\">created_from must be a date"),
                "the error next to its field, which keeps what was typed: \(page)"
            )
            #expect(page.contains("name=\"workflow\" value=\"echo\""), "the other filters are kept")
            #expect(!page.contains("e-1"), "no list under a filter that cannot be read")

            let api = try await client.execute(uri: "/api/instances?created_from=yesterday", method: .get)
            #expect(api.status == .badRequest)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(api.body.readableBytesView)) as? [String: Any])
            let error = try #require(document["error"] as? [String: Any])
            #expect(error["type"] as? String == "invalid_filter" && error["field"] as? String == "created_from")
        }
    }

    @Test func anInputKeyWithoutAValueIsMarkedAtTheValue() async throws {
        try await withViewer { _, client in
            for uri in ["/?input_key=customer", "/?input_key=customer&input_value=&status="] {
                let response = try await client.execute(uri: uri, method: .get)
                #expect(response.status == .badRequest, "\(uri)")
                let page = html(response)
                #expect(page.contains("name=\"input_value\" placeholder=\"value\" size=\"14\" value=\"\"> <span class=\"field-error\">input_key needs an input_value"), "\(uri): \(page)")
            }
            let valueOnly = html(try await client.execute(uri: "/?input_key=&input_value=42", method: .get))
            #expect(valueOnly.contains("value=\"\"></label> <span class=\"field-error\">input_value &#39;42&#39; needs an input_key"), "\(valueOnly)")
            let twoAtOnce = html(try await client.execute(uri: "/?status=sleeping&created_before=soon", method: .get))
            #expect(twoAtOnce.contains("</select></label> <span class=\"field-error\">Unknown status &#39;sleeping&#39;"), "every field at fault is marked")
            #expect(twoAtOnce.contains("value=\"soon\"></label> <span class=\"field-error\">created_before must be a date"))
        }
    }

    @Test func aFormOverTheLimitIsShownAgainWithTheLimit() async throws {
        try await withViewer(.init(maxBodyBytes: 300)) { app, client in
            let (cookie, token) = try await csrf(client)
            let big = "csrf=\(token)&a0=" + String(repeating: "x", count: 400)
            let start = try await client.execute(
                uri: "/workflows/echo/start", method: .post, headers: Self.form + [.cookie: cookie], body: ByteBuffer(string: big)
            )
            #expect(start.status == .contentTooLarge)
            let page = html(start)
            #expect(page.contains("<h1>Start echo</h1>") && page.contains("name=\"a0\""), "the start form again")
            #expect(page.contains("larger than the 300 bytes"), "it states the limit: \(page)")
            #expect(try await app.instances(matching: InstanceQuery()).instances.isEmpty, "nothing was started")

            _ = try await app.start(Self.echo, "x", instanceID: "e-1").result()
            let cancel = try await client.execute(
                uri: "/instances/e-1/cancel", method: .post, headers: Self.form + [.cookie: cookie], body: ByteBuffer(string: big)
            )
            #expect(cancel.status == .contentTooLarge)
            #expect(html(cancel).contains("larger than the 300 bytes"))
        }
    }

    @Test func anUnknownInstanceOrPageIsAnHTMLNotFound() async throws {
        try await withViewer { _, client in
            let (cookie, token) = try await csrf(client)
            let cancel = try await client.execute(
                uri: "/instances/nope/cancel", method: .post, headers: Self.form + [.cookie: cookie], body: ByteBuffer(string: "csrf=\(token)")
            )
            #expect(cancel.status == .notFound)
            #expect(html(cancel).contains("No workflow instance has ID nope"))
            let page = try await client.execute(uri: "/instances/nope", method: .get)
            #expect(page.status == .notFound)
            _ = html(page)
            let nowhere = try await client.execute(uri: "/nowhere", method: .get)
            #expect(nowhere.status == .notFound)
            #expect(html(nowhere).contains("There is no page at /nowhere"))

            let api = try await client.execute(uri: "/api/instances/nope", method: .get)
            #expect(api.status == .notFound)
            #expect(String(buffer: api.body).contains("\"type\":\"not_found\""))
        }
    }

    @Test func anotherMethodOnAViewerPathIsAnHTML405() async throws {
        try await withViewer { _, client in
            let put = try await client.execute(uri: "/", method: .put)
            #expect(put.status == .methodNotAllowed)
            #expect(put.headers[.allow] == "GET, HEAD")
            #expect(html(put).contains("/ does not take PUT: use GET, HEAD."))
            let delete = try await client.execute(uri: "/instances/x", method: .delete)
            #expect(delete.status == .methodNotAllowed)
            _ = html(delete)

            let api = try await client.execute(uri: "/api/instances", method: .put)
            #expect(api.status == .methodNotAllowed)
            #expect(api.headers[.contentType]?.hasPrefix("application/json") == true)
            #expect(String(buffer: api.body).contains("\"type\":\"method_not_allowed\""))
        }
    }

    @Test func aFormPostedWithoutASessionGetsTheSignInPage() async throws {
        try await withViewer(.init(bearerToken: "s3cret")) { _, client in
            let response = try await client.execute(uri: "/instances/x/cancel", method: .post, headers: Self.form, body: ByteBuffer(string: "csrf=x"))
            #expect(response.status == .unauthorized)
            let page = html(response)
            #expect(page.contains("name=\"token\"") && page.contains("Nothing was done: sign in first"))
            let api = try await client.execute(uri: "/api/instances/x/cancel", method: .post)
            #expect(api.status == .unauthorized)
            #expect(String(buffer: api.body).contains("\"type\":\"unauthorized\""))
        }
    }
}

extension HTTPFields {
    static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields {
        var fields = lhs
        fields.append(contentsOf: rhs)
        return fields
    }
}
