import Edda
import EddaHTTP
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The start form generated from a workflow's input type, and the viewer's login.
@Suite("HTTP: start form and login", .timeLimit(.minutes(1)))
struct StartFormTests {
    enum Priority: String, Codable, Sendable, CaseIterable { case low, high }
    struct Line: Codable, Sendable, Equatable { var sku: String; var quantity: Int }
    struct Address: Codable, Sendable, Equatable { var street: String; var zip: String? }
    struct Order: Codable, Sendable, Equatable, Validatable {
        var orderID: String
        var amount: Double
        var express: Bool
        var priority: Priority
        var shipTo: Address
        var billTo: Address?
        var lines: [Line]
        var attributes: [String: Int]?
        func validate() throws {
            guard amount > 0 else { throw ValidationError(field: "amount", "must be greater than 0") }
        }
    }

    static let order = Workflow("order") { (ctx: WorkflowContext, order: Order) -> String in
        _ = try await ctx.waitForEvent(type: "never", as: Int.self)
        return order.orderID
    }

    func withViewer(token: String? = nil, _ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await withTestApp { app in
            try app.register(Self.order)
            let server = Application(router: EddaHTTP(app: app, configuration: .init(bearerToken: token)).router())
            try await server.test(.router) { client in try await body(app, client) }
        }
    }

    /// Posts the form's fields with the CSRF token of a freshly loaded form.
    func post(_ client: any TestClientProtocol, _ fields: [(String, String)]) async throws -> TestResponse {
        let page = try await client.execute(uri: "/workflows/order/start", method: .get)
        let cookie = try #require(page.headers[.setCookie]).split(separator: ";")[0]
        let token = String(cookie.dropFirst("edda_csrf=".count))
        var components = URLComponents()
        components.queryItems = ([("csrf", token)] + fields).map { URLQueryItem(name: $0.0, value: $0.1) }
        return try await client.execute(
            uri: "/workflows/order/start", method: .post,
            headers: [.contentType: "application/x-www-form-urlencoded", .cookie: String(cookie)],
            body: ByteBuffer(string: components.percentEncodedQuery!)
        )
    }

    static let valid: [(String, String)] = [
        ("a0.orderID", "ORD-7"), ("a0.amount", "12.5"), ("a0.express", "true"), ("a0.priority", "1"),
        ("a0.shipTo.street", "1 Main St"), ("a0.shipTo.zip", ""), ("a0.billTo.street", ""), ("a0.billTo.zip", ""),
        ("a0.lines.0.sku", "A"), ("a0.lines.0.quantity", "2"), ("a0.lines.1.sku", ""), ("a0.lines.1.quantity", ""),
    ]

    @Test func theFormHasAFieldPerMemberNestedTypesListsOptionalsAndEnums() async throws {
        try await withViewer { app, client in
            let index = String(buffer: try await client.execute(uri: "/workflows", method: .get).body)
            #expect(index.contains("href=\"/workflows/order/start\""))
            let page = try await client.execute(uri: "/workflows/order/start", method: .get)
            #expect(page.status == .ok)
            let html = String(buffer: page.body)
            for name in ["a0.orderID", "a0.amount", "a0.shipTo.street", "a0.shipTo.zip", "a0.billTo.street", "a0.lines.0.sku", "a0.lines.0.quantity"] {
                #expect(html.contains("name=\"\(name)\""), "no field \(name)")
            }
            #expect(html.contains("<select name=\"a0.priority\"><option value=\"\">—</option><option value=\"0\">low</option><option value=\"1\">high</option>"))
            #expect(html.contains("<select name=\"a0.express\">"))
            #expect(html.contains("billTo <small>(optional)</small>"))
            #expect(html.contains("name=\"edda_add\" value=\"a0.lines\""))
            #expect(!html.contains("name=\"a0.lines.1.sku\""))

            let added = try await post(client, [("a0.lines.0.sku", "A"), ("edda_add", "a0.lines")])
            #expect(added.status == .ok)
            let grown = String(buffer: added.body)
            #expect(grown.contains("name=\"a0.lines.1.sku\""), "Add shows one more element")
            #expect(grown.contains("name=\"a0.lines.0.sku\" value=\"A\""), "what was entered stays")
            #expect(try await app.instances(matching: InstanceQuery()).instances.isEmpty)
        }
    }

    @Test func errorsAreShownNextToTheirFieldsAndNothingStarts() async throws {
        try await withViewer { app, client in
            var fields = Self.valid
            fields[1] = ("a0.amount", "lots")
            fields[3] = ("a0.priority", "")
            let typed = try await post(client, fields)
            #expect(typed.status == .unprocessableContent)
            let html = String(buffer: typed.body)
            #expect(html.contains("name=\"a0.amount\" inputmode=\"decimal\" value=\"lots\"></label> <span class=\"field-error\">must be a number, not &#39;lots&#39;</span>"))
            #expect(html.contains("</select></label> <span class=\"field-error\">choose one of the options</span>"))

            fields = Self.valid
            fields[1] = ("a0.amount", "-3")
            let rejected = try await post(client, fields)
            #expect(rejected.status == .unprocessableContent)
            #expect(String(buffer: rejected.body).contains("value=\"-3\"></label> <span class=\"field-error\">must be greater than 0</span>"),
                    "the Validatable rule's message sits next to the field it names")
            #expect(try await app.instances(matching: InstanceQuery()).instances.isEmpty, "a rejected form started nothing")

            fields = Self.valid
            fields[1] = ("a0.amount", "nan")
            let notFinite = try await post(client, fields)
            #expect(notFinite.status == .unprocessableContent)
            #expect(String(buffer: notFinite.body).contains("must be a number, not &#39;nan&#39;"))

            // An error inside a JSON field is shown at that field.
            let badJSON = try await post(client, Self.valid + [("a0.attributes", #"{"a": "x"}"#)])
            #expect(badJSON.status == .unprocessableContent)
            #expect(String(buffer: badJSON.body).contains("</textarea></label> <span class=\"field-error\">is not accepted"), "\(String(buffer: badJSON.body))")

            // A list index far past what the form shows is ignored, not looped over (or overflowed).
            let huge = try await post(client, [("a0.lines.9223372036854775807", "x"), ("a0.lines.1000000000.sku", "y"), ("edda_add", "a0.lines")])
            #expect(huge.status == .ok)
            #expect(!String(buffer: huge.body).contains("name=\"a0.lines.2.sku\""))
            #expect(try await app.instances(matching: InstanceQuery()).instances.isEmpty)
        }
    }

    @Test func pagesInSeveralTabsShareOneFormToken() async throws {
        try await withViewer { _, client in
            let first = try await client.execute(uri: "/workflows/order/start", method: .get)
            let cookie = try #require(first.headers[.setCookie]).split(separator: ";")[0]
            let second = try await client.execute(uri: "/workflows/order/start", method: .get, headers: [.cookie: String(cookie)])
            #expect(second.headers[.setCookie] == nil, "the browser's token is kept")
            #expect(String(buffer: second.body).contains("value=\"\(cookie.dropFirst("edda_csrf=".count))\""))
            let forged = try await client.execute(
                uri: "/workflows/order/start", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .cookie: String(cookie)],
                body: ByteBuffer(string: "csrf=guess&a0.orderID=x")
            )
            #expect(forged.status == .forbidden)
            #expect(String(buffer: forged.body).contains("Nothing was done"), "a refused form is told in HTML")
        }
    }

    @Test func aValidFormStartsTheInstanceAndShowsIt() async throws {
        try await withViewer { app, client in
            let response = try await post(client, Self.valid + [("edda_instance_id", "form-1")])
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/instances/form-1")
            let instance = try #require(try await app.instance("form-1"))
            let input = try instance.input.decode([Order].self)
            #expect(
                input == [Order(
                    orderID: "ORD-7", amount: 12.5, express: true, priority: .high, shipTo: Address(street: "1 Main St", zip: nil),
                    billTo: nil, lines: [Line(sku: "A", quantity: 2)], attributes: nil
                )]
            )
        }
    }

    @Test func theFormStartsOnAQueueWithItsOptionsAndShowsTheEngineRefusalsNextToThem() async throws {
        try await withViewer { app, client in
            // Without a registered queue, only the timeout is offered.
            let plain = String(buffer: try await client.execute(uri: "/workflows/order/start", method: .get).body)
            #expect(!plain.contains("name=\"edda_queue\"") && plain.contains("name=\"edda_timeout\""), "\(plain)")

            app.register(Queue("orders", concurrency: 1))
            app.register(Queue("tenants", concurrency: 1, partitioned: true))
            let html = String(buffer: try await client.execute(uri: "/workflows/order/start", method: .get).body)
            #expect(
                html.contains(
                    "<select name=\"edda_queue\"><option value=\"\">none: start at once</option><option value=\"orders\">orders</option>"
                        + "<option value=\"tenants\">tenants (partitioned)</option></select>"
                ),
                "\(html)"
            )
            for name in ["edda_priority", "edda_deduplication_id", "edda_partition_key"] { #expect(html.contains("name=\"\(name)\""), "no \(name)") }

            let started = try await post(
                client,
                Self.valid + [
                    ("edda_instance_id", "form-q"), ("edda_queue", "orders"), ("edda_priority", "3"), ("edda_deduplication_id", "ORD-7"),
                    ("edda_timeout", "90"),
                ]
            )
            #expect(started.status == .seeOther, "\(String(buffer: started.body))")
            let instance = try #require(try await app.instance("form-q"))
            #expect(instance.queue == "orders" && instance.priority == 3 && instance.workflowTimeout == .seconds(90))

            // Each refusal shows next to its field (HTML-escaped), keeps what was entered, and starts nothing.
            let refusals: [([(String, String)], String, String)] = [
                ([("edda_queue", "tenants")], "edda_partition_key", "is partitioned"),
                ([("edda_queue", "orders"), ("edda_deduplication_id", "ORD-7")], "edda_deduplication_id", "holds deduplication ID &#39;ORD-7&#39;"),
                ([("edda_queue", "gone")], "edda_queue", "No queue named &#39;gone&#39;"),
                ([("edda_priority", "2")], "edda_queue", "name the queue too"),
                ([("edda_queue", "orders"), ("edda_priority", "high")], "edda_priority", "must be a whole number, not &#39;high&#39;"),
                ([("edda_timeout", "0")], "edda_timeout", "must be a number of seconds above zero"),
            ]
            for (options, field, message) in refusals {
                let refused = try await post(client, Self.valid + [("edda_instance_id", "form-r")] + options)
                let page = String(buffer: refused.body)
                #expect(refused.status.code >= 400, "\(options): \(refused.status)")
                #expect(page.contains("Nothing was started: correct the fields marked below."), "\(options)")
                let marked = try #require(page.range(of: "name=\"\(field)\""), "\(options): no field \(field)")
                let afterField = page[marked.upperBound...].prefix(600)
                #expect(afterField.contains("field-error") && afterField.contains(message), "\(options): \(afterField)")
                #expect(page.contains("value=\"ORD-7\""), "the input is kept")
            }
            #expect(try await app.instance("form-r") == nil, "nothing was started")
        }
    }

    @Test func theAPIDescribesEachWorkflowsInputAsAJSONSchema() async throws {
        try await withViewer { _, client in
            let response = try await client.execute(uri: "/api/workflows", method: .get)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            let workflow = try #require((document["workflows"] as? [[String: Any]])?.first)
            #expect(workflow["name"] as? String == "order")
            let schema = try #require((workflow["arguments"] as? [[String: Any]])?.first)
            #expect(schema["type"] as? String == "object")
            #expect(Set(schema["required"] as? [String] ?? []) == ["orderID", "amount", "express", "priority", "shipTo", "lines"])
            let properties = try #require(schema["properties"] as? [String: Any])
            #expect((properties["priority"] as? [String: Any])?["enum"] as? [String] == ["low", "high"])
        }
    }

    @Test func withATokenTheViewerAsksToSignInAndACookieThenLetsThrough() async throws {
        try await withViewer(token: "s3cret") { _, client in
            let anonymous = try await client.execute(uri: "/?status=running", method: .get)
            #expect(anonymous.status == .unauthorized)
            let login = String(buffer: anonymous.body)
            #expect(login.contains("action=\"/login\"") && login.contains("value=\"/?status=running\""), "the sign-in form returns to the page asked for")
            let api = try await client.execute(uri: "/api/instances", method: .get)
            #expect(api.status == .unauthorized)
            #expect(api.headers[.contentType]?.hasPrefix("application/json") == true)

            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let wrong = try await client.execute(uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=guess&next=%2F"))
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers[.setCookie] == nil)
            let offsite = try await client.execute(uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=s3cret&next=%2F%2Fevil.example"))
            #expect(offsite.headers[.location] == "/", "never a redirect to another site")
            let right = try await client.execute(uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=s3cret&next=%2F%3Fstatus%3Drunning"))
            #expect(right.status == .seeOther)
            #expect(right.headers[.location] == "/?status=running")
            let cookie = try #require(right.headers[.setCookie])
            #expect(cookie.hasPrefix("edda_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            #expect(!cookie.contains("s3cret"), "the cookie is a session, not the token")
            let session = String(cookie.split(separator: ";")[0])
            let signedIn = try await client.execute(uri: "/", method: .get, headers: [.cookie: session])
            #expect(signedIn.status == .ok)
            let apiWithCookie = try await client.execute(uri: "/api/instances", method: .get, headers: [.cookie: session])
            #expect(apiWithCookie.status == .unauthorized, "the API takes the bearer token only")
            let forged = try await client.execute(uri: "/", method: .get, headers: [.cookie: "edda_session=guess"])
            #expect(forged.status == .unauthorized)
            let sneaky = try await client.execute(uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=s3cret&next=%2F%09%2Fevil.example"))
            #expect(sneaky.headers[.location] == "/", "a path with control characters is not followed")
        }
    }
}
