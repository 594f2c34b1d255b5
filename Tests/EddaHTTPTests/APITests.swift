import Edda
import EddaHTTP
import EddaSQLite
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

struct Greeting: Codable, Sendable, Validatable {
    var name: String

    func validate() throws {
        guard !name.isEmpty else { throw ValidationError(field: "name", "must not be empty") }
    }
}

/// The JSON API and the CloudEvents ingress, through Hummingbird's router test client.
@Suite("HTTP: JSON API and CloudEvents ingress", .timeLimit(.minutes(1)))
struct APITests {
    static let greet = Workflow("greet") { (ctx, greeting: Greeting) -> String in "Hello, \(greeting.name)!" }

    static let checkout = Workflow("checkout") { (ctx, order: String) -> String in
        let paid = try await ctx.waitForEvent(type: "payment.completed", as: Int.self, timeout: .seconds(30))
        return "\(order) paid \(paid.data) via \(paid.source)"
    }

    /// A running app with both workflows, and a test client on its API.
    func withAPI(
        _ configuration: EddaHTTP.Configuration = .init(),
        _ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withTestApp { app in
            try app.register(Self.greet)
            try app.register(Self.checkout)
            let api = Application(router: EddaHTTP(app: app, configuration: configuration).router())
            try await api.test(.router) { client in try await body(app, client) }
        }
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
    }

    func error(_ response: TestResponse) throws -> [String: Any] {
        try #require(try json(response)["error"] as? [String: Any])
    }

    func errorType(_ response: TestResponse) throws -> String? {
        try error(response)["type"] as? String
    }

    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func startListShowAndPageHistory() async throws {
        try await withAPI { app, client in
            let created = try await client.execute(
                uri: "/api/workflows/greet/instances", method: .post, headers: [.contentType: "application/json"],
                body: Self.body(#"{"input": [{"name": "Ada"}], "instance_id": "g-1"}"#)
            )
            #expect(created.status == .created)
            #expect(try json(created)["instance_id"] as? String == "g-1")
            #expect(try await app.handle(for: Self.greet, instanceID: "g-1").result() == "Hello, Ada!")

            let list = try await client.execute(uri: "/api/instances?status=completed&workflow=greet", method: .get)
            #expect(list.status == .ok)
            let listed = try json(list)
            let instances = try #require(listed["instances"] as? [[String: Any]])
            #expect(instances.map { $0["instance_id"] as? String } == ["g-1"])
            #expect(instances.first?["output"] as? String == "Hello, Ada!")
            #expect((listed["counts"] as? [String: Int])?["completed"] == 1)

            let one = try await client.execute(uri: "/api/instances/g-1", method: .get)
            #expect(try json(one)["status"] as? String == "completed")
            let history = try await client.execute(uri: "/api/instances/g-1/history?limit=10", method: .get)
            #expect((try json(history)["history"] as? [Any])?.isEmpty == true, "a workflow with no steps has no records")

            let missing = try await client.execute(uri: "/api/instances/nope", method: .get)
            #expect(missing.status == .notFound)
            #expect(try errorType(missing) == "not_found")
            let badFilter = try await client.execute(uri: "/api/instances?status=sleeping", method: .get)
            #expect(badFilter.status == .badRequest)
            #expect(try errorType(badFilter) == "invalid_filter")
        }
    }

    static let json: HTTPFields = [.contentType: "application/json"]

    /// Posts `body` as JSON to the start route of `workflow`.
    func start(_ client: any TestClientProtocol, _ body: String, workflow: String = "greet") async throws -> TestResponse {
        try await client.execute(uri: "/api/workflows/\(workflow)/instances", method: .post, headers: Self.json, body: Self.body(body))
    }

    @Test func startingWithBadInputSaysWhyAndCreatesNothing() async throws {
        try await withAPI { app, client in
            let invalid = try await start(client, #"{"input": [{"name": ""}], "instance_id": "g-2"}"#)
            #expect(invalid.status == .badRequest)
            #expect(try errorType(invalid) == "invalid_input")
            #expect(try error(invalid)["field"] as? String == "input.0.name", "the field the workflow's validation names, in the body")
            #expect(String(buffer: invalid.body).contains("must not be empty"))
            let wrongShape = try await start(client, #"{"input": [42]}"#)
            #expect(wrongShape.status == .badRequest)
            #expect(try error(wrongShape)["field"] as? String == "input.0")
            let notJSON = try await start(client, "name=Ada")
            #expect(notJSON.status == .badRequest)
            #expect(try errorType(notJSON) == "invalid_body")
            let notArray = try await start(client, #"{"input": {"name": "Ada"}}"#)
            #expect(notArray.status == .badRequest)
            #expect(try error(notArray)["field"] as? String == "input")
            let unknown = try await start(client, #"{"input": []}"#, workflow: "nope")
            #expect(unknown.status == .notFound)
            #expect(try errorType(unknown) == "unknown_workflow")
            #expect(try await app.instance("g-2") == nil)
        }
    }

    @Test func aStartBodyThatIsNotJSONIs415() async throws {
        try await withAPI { app, client in
            let start = Self.body(#"{"input": [{"name": "Ada"}], "instance_id": "m-1"}"#)
            for contentType in [nil, "text/plain", "application/x-www-form-urlencoded"] {
                let headers: HTTPFields = contentType.map { [.contentType: $0] } ?? [:]
                let refused = try await client.execute(uri: "/api/workflows/greet/instances", method: .post, headers: headers, body: start)
                #expect(refused.status == .unsupportedMediaType, "\(contentType ?? "no Content-Type")")
                #expect(try errorType(refused) == "unsupported_media_type")
                #expect(try error(refused)["field"] as? String == "Content-Type")
                #expect(String(buffer: refused.body).contains("application/json"), "it says what to send")
            }
            #expect(try await app.instance("m-1") == nil)
            let withCharset = try await client.execute(
                uri: "/api/workflows/greet/instances", method: .post, headers: [.contentType: "Application/JSON; charset=utf-8"], body: start
            )
            #expect(withCharset.status == .created)
        }
    }

    @Test func aTypoInTheBodyNamesTheKeyExpected() async throws {
        try await withAPI { app, client in
            let typo = try await start(client, #"{"inputs": [{"name": "Ada"}], "instance_id": "t-1"}"#)
            #expect(typo.status == .badRequest)
            #expect(try errorType(typo) == "unknown_key")
            #expect(try error(typo)["field"] as? String == "inputs")
            #expect(((try error(typo)["message"] as? String) ?? "").contains("did you mean 'input'?"))
            let camel = try await start(client, #"{"input": [{"name": "Ada"}], "instanceID": "t-1"}"#)
            #expect(((try error(camel)["message"] as? String) ?? "").contains("did you mean 'instance_id'?"))
            let wrongType = try await start(client, #"{"input": [{"name": "Ada"}], "instance_id": 7}"#)
            #expect(try error(wrongType)["field"] as? String == "instance_id")
            #expect(try await app.instance("t-1") == nil, "nothing was started")
        }
    }

    @Test func aWrongMethodOnAKnownRouteIs405WithAllow() async throws {
        try await withAPI { _, client in
            let get = try await client.execute(uri: "/api/workflows/greet/instances", method: .get)
            #expect(get.status == .methodNotAllowed)
            #expect(get.headers[.allow] == "POST")
            #expect(try errorType(get) == "method_not_allowed")
            let delete = try await client.execute(uri: "/api/instances/x", method: .delete)
            #expect(delete.status == .methodNotAllowed)
            #expect(delete.headers[.allow] == "GET, HEAD")
            let post = try await client.execute(uri: "/api/instances", method: .post)
            #expect(post.status == .methodNotAllowed)
            let page = try await client.execute(uri: "/instances/x", method: .put)
            #expect(page.status == .methodNotAllowed)
            let head = try await client.execute(uri: "/api/instances", method: .head)
            #expect(head.status == .ok, "HEAD comes with GET")
            let unknown = try await client.execute(uri: "/api/nothing", method: .get)
            #expect(unknown.status == .notFound, "an unknown path stays 404")
        }
    }

    @Test func everyErrorHasOneShapeInOneNamingStyle() async throws {
        try await withAPI(.init(maxBodyBytes: 4096)) { _, client in
            let requests: [(String, HTTPRequest.Method, HTTPFields, String?)] = [
                ("/api/instances/nope", .get, [:], nil),
                ("/api/instances?limit=0", .get, [:], nil),
                ("/api/instances/nope/history?after=x", .get, [:], nil),
                ("/api/instances/nope/cancel", .post, [:], nil),
                ("/api/instances/nope/retry", .post, [:], nil),
                ("/api/instances/cancel", .post, [:], nil),
                ("/api/workflows/greet/instances", .post, [:], "{}"),
                ("/api/workflows/greet/instances", .post, Self.json, "[]"),
                ("/api/workflows/greet/instances", .get, [:], nil),
                ("/api/events", .post, [.contentType: "application/cloudevents+json"], "{}"),
                ("/api/instances", .post, [.origin: "http://elsewhere.example"], nil),
                ("/api/unknown", .get, [:], nil),
            ]
            for (uri, method, headers, body) in requests {
                let response = try await client.execute(uri: uri, method: method, headers: headers, body: body.map(Self.body))
                #expect(response.status.code >= 400, "\(method) \(uri)")
                let document = try json(response)
                #expect(Set(document.keys) == ["error"], "\(method) \(uri): \(document)")
                let error = try #require(document["error"] as? [String: Any])
                #expect(Set(error.keys) == ["type", "message", "field"], "\(method) \(uri): \(error)")
                let type = try #require(error["type"] as? String)
                #expect(!type.isEmpty && type.allSatisfy { $0.isLowercase || $0 == "_" }, "\(method) \(uri): '\(type)' is not snake_case")
                #expect((error["message"] as? String)?.isEmpty == false)
                #expect(error["field"] is String || error["field"] is NSNull)
            }
        }
    }

    @Test func searchByInputAndCancelEveryMatch() async throws {
        try await withAPI { app, client in
            for order in ["order-1", "order-2", "order-3"] { _ = try await app.start(Self.checkout, order, instanceID: "bulk-\(order)") }
            _ = try await app.start(Self.greet, Greeting(name: "Ada"), instanceID: "g-ada").result()
            let search = try await client.execute(uri: "/api/instances?input_key=name&input_value=Ada", method: .get)
            #expect((try json(search)["instances"] as? [[String: Any]])?.map { $0["instance_id"] as? String } == ["g-ada"])
            #expect((try json(search)["counts"] as? [String: Int])?["completed"] == 1, "counts follow the input filter")
            let past = try await client.execute(uri: "/api/instances?created_before=2020-01-01", method: .get)
            #expect((try json(past)["instances"] as? [[String: Any]])?.isEmpty == true)
            let today = try await client.execute(uri: "/api/instances?created_from=2020-01-01T00:00:00Z&created_before=2999-01-01", method: .get)
            #expect((try json(today)["instances"] as? [[String: Any]])?.count == 4)
            let garbled = try await client.execute(uri: "/api/instances?created_from=yesterday", method: .get)
            #expect(garbled.status == .badRequest)
            #expect(try errorType(garbled) == "invalid_filter")
            let unfiltered = try await client.execute(uri: "/api/instances/cancel", method: .post)
            #expect(unfiltered.status == .badRequest, "cancelling everything takes a filter")
            let crossSite = try await client.execute(
                uri: "/api/instances/cancel?workflow=checkout&status=running", method: .post, headers: [.origin: "http://localhost:3000"]
            )
            #expect(crossSite.status == .forbidden, "a form on another site cannot cancel through the API")
            #expect(try await app.instance("bulk-order-1")?.cancelRequested == false)
            let bulk = try await client.execute(uri: "/api/instances/cancel?workflow=checkout&status=running", method: .post)
            #expect(bulk.status == .accepted)
            #expect(Set(try json(bulk)["cancelled"] as? [String] ?? []) == ["bulk-order-1", "bulk-order-2", "bulk-order-3"])
            for order in ["order-1", "order-2", "order-3"] {
                await #expect(throws: WorkflowCancelledError.self) { try await app.handle(for: Self.checkout, instanceID: "bulk-\(order)").result() }
            }
            #expect(try await app.instance("g-ada")?.status == .completed, "outside the filter: untouched")
        }
    }

    @Test func retryAFailedInstanceFromItsFailedStep() async throws {
        try await withAPI { app, client in
            let attempts = Atomic<Int>(0)
            let flaky = Activity("flaky", retry: .noRetry) { (ctx) -> Int in
                if attempts.add(1, ordering: .relaxed).newValue == 1 { throw TerminalError("first call fails") }
                return 7
            }
            let workflow = Workflow("flaky_once") { (ctx) -> Int in try await flaky(ctx) }
            await #expect(throws: WorkflowFailedError.self) { try await app.start(workflow, instanceID: "f-1").result() }
            let retried = try await client.execute(uri: "/api/instances/f-1/retry", method: .post)
            #expect(retried.status == .accepted)
            #expect(try json(retried)["retried_step"] as? String == "flaky:1")
            #expect(try await app.handle(for: workflow, instanceID: "f-1").result() == 7)
            let notFailed = try await client.execute(uri: "/api/instances/f-1/retry", method: .post)
            #expect(notFailed.status == .conflict)
            #expect(try errorType(notFailed) == "not_failed")
        }
    }

    @Test func cancelAWaitingInstanceThenAFinishedOne() async throws {
        try await withAPI { app, client in
            let handle = try await app.start(Self.checkout, "order-7", instanceID: "c-1")
            let cancelled = try await client.execute(uri: "/api/instances/c-1/cancel", method: .post)
            #expect(cancelled.status == .accepted)
            #expect(try json(cancelled)["cancelled"] as? Bool == true, "the request took effect")
            #expect(try json(cancelled)["cancel_requested"] as? Bool == true)
            #expect(try json(cancelled)["status"] as? String == "running", "not finished yet: it stops at its next step")
            await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            let again = try await client.execute(uri: "/api/instances/c-1/cancel", method: .post)
            #expect(again.status == .conflict)
            #expect(try errorType(again) == "already_finished")
            #expect(try json(again)["cancelled"] as? Bool == false, "nothing to cancel")
            #expect(try json(again)["status"] as? String == "cancelled", "its final status")
            let unknown = try await client.execute(uri: "/api/instances/nope/cancel", method: .post)
            #expect(unknown.status == .notFound)
        }
    }

    @Test func cloudEventsInStructuredAndBinaryModeReachTheirWaiters() async throws {
        try await withAPI { app, client in
            let first = try await app.start(Self.checkout, "order-1", instanceID: "o-1")
            let second = try await app.start(Self.checkout, "order-2", instanceID: "o-2")
            // Structured mode, routed to one instance by the eddainstanceid extension.
            let structured = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                body: Self.body(
                    #"{"specversion": "1.0", "id": "e-1", "source": "/payments", "type": "payment.completed", "data": 42, "eddainstanceid": "o-1"}"#
                )
            )
            #expect(structured.status == .accepted)
            #expect(try await first.result() == "order-1 paid 42 via /payments")
            // Binary mode: attributes in ce- headers, the data as the body.
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[HTTPField.Name("ce-specversion")!] = "1.0"
            headers[HTTPField.Name("ce-id")!] = "e-2"
            headers[HTTPField.Name("ce-source")!] = "/cards"
            headers[HTTPField.Name("ce-type")!] = "payment.completed"
            headers[HTTPField.Name("ce-eddainstanceid")!] = "o-2"
            let binary = try await client.execute(uri: "/api/events", method: .post, headers: headers, body: Self.body("7"))
            #expect(binary.status == .accepted)
            #expect(try await second.result() == "order-2 paid 7 via /cards")
            #expect(try await app.history(of: "o-2").map(\.kind) == [.messageReceived])
        }
    }

    static let fulfil = Workflow("fulfil") { (ctx, order: Int) -> String in "order \(order) fulfilled" }

    @Test func anEventTypeStartsItsHandlerOncePerEventID() async throws {
        try await withAPI { app, client in
            try app.startOnEvent("order.created", Self.fulfil)
            let event = #"{"specversion": "1.0", "id": "e-9", "source": "/shop", "type": "order.created", "data": 17}"#
            for _ in 1...2 {   // delivered twice, as CloudEvents senders may
                let accepted = try await client.execute(
                    uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"], body: Self.body(event)
                )
                #expect(accepted.status == .accepted)
                #expect(try json(accepted)["started"] as? [String] == ["fulfil/e-9@/shop"])
            }
            #expect(try await app.handle(for: Self.fulfil, instanceID: "fulfil/e-9@/shop").result() == "order 17 fulfilled")
            #expect(try await app.instances(workflowName: "fulfil").count == 1)
            // The same ID from another source is another event.
            let otherSource = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                body: Self.body(#"{"specversion": "1.0", "id": "e-9", "source": "/warehouse", "type": "order.created", "data": 18}"#)
            )
            #expect(try json(otherSource)["started"] as? [String] == ["fulfil/e-9@/warehouse"])
            #expect(try await app.instances(workflowName: "fulfil").count == 2)
            // An '@' in the ID cannot make two events one.
            let mailID = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                body: Self.body(#"{"specversion": "1.0", "id": "e-9@/shop", "source": "x", "type": "order.created", "data": 19}"#)
            )
            #expect(try json(mailID)["started"] as? [String] == ["fulfil/e-9%40/shop@x"])
            let wrongData = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                body: Self.body(#"{"specversion": "1.0", "id": "e-10", "source": "/shop", "type": "order.created", "data": "seventeen"}"#)
            )
            #expect(wrongData.status == .badRequest)
            #expect(try await app.instance("fulfil/e-10@/shop") == nil)
        }
    }

    @Test func malformedEventsAreRefusedWithTheReason() async throws {
        try await withAPI { _, client in
            let noID = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                body: Self.body(#"{"specversion": "1.0", "source": "/x", "type": "t"}"#)
            )
            #expect(noID.status == .badRequest)
            #expect(try errorType(noID) == "malformed_event")
            #expect(String(buffer: noID.body).contains("'id' is missing"))
            let nothing = try await client.execute(uri: "/api/events", method: .post, headers: [.contentType: "application/json"], body: Self.body("{}"))
            #expect(nothing.status == .badRequest)
            #expect(String(buffer: nothing.body).contains("no CloudEvent found"))
            let unknownTarget = try await client.execute(
                uri: "/api/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                body: Self.body(#"{"specversion": "1.0", "id": "e", "source": "/x", "type": "t", "eddainstanceid": "ghost"}"#)
            )
            #expect(unknownTarget.status == .notFound)
        }
    }

    @Test func aBearerTokenGuardsEveryRouteAndARefusedRequestDoesNothing() async throws {
        try await withAPI(.init(bearerToken: "s3cret")) { app, client in
            let start = Self.body(#"{"input": [{"name": "Eve"}], "instance_id": "t-1"}"#)
            let missing = try await client.execute(uri: "/api/workflows/greet/instances", method: .post, body: start)
            #expect(missing.status == .unauthorized)
            #expect(try errorType(missing) == "unauthorized")
            let wrong = try await client.execute(
                uri: "/api/workflows/greet/instances", method: .post, headers: [.authorization: "Bearer guess"], body: start
            )
            #expect(wrong.status == .unauthorized)
            #expect(try await app.instance("t-1") == nil, "nothing was started")
            let list = try await client.execute(uri: "/api/instances", method: .get)
            #expect(list.status == .unauthorized)
            let right = try await client.execute(
                uri: "/api/workflows/greet/instances", method: .post, headers: [.authorization: "Bearer s3cret", .contentType: "application/json"],
                body: start
            )
            #expect(right.status == .created)
        }
    }

    @Test func aBodyPastTheLimitIs413() async throws {
        try await withAPI(.init(maxBodyBytes: 64)) { app, client in
            let large = try await client.execute(
                uri: "/api/workflows/greet/instances", method: .post, headers: Self.json,
                body: Self.body(#"{"input": [{"name": "\#(String(repeating: "x", count: 200))"}], "instance_id": "big"}"#)
            )
            #expect(large.status == .contentTooLarge)
            #expect(try errorType(large) == "payload_too_large")
            #expect(((try error(large)["message"] as? String) ?? "").contains("64 bytes"), "a 413 states the limit")
            #expect(try await app.instance("big") == nil)
        }
    }
}
