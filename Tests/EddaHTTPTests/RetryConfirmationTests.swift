@_spi(EddaStores) import Edda
import EddaHTTP
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// "Retry from the failed step" in the viewer: a confirmation page first (saying when
/// compensations already ran), a record in history (who, when, which step), the archived failure
/// still shown, and a note when nothing here runs the workflow. `edda retry` records itself too.
@Suite("HTTP: retrying from the viewer, with confirmation and a record", .timeLimit(.minutes(1)))
struct RetryConfirmationTests {
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    /// A cookie and its form token, from the page at `uri`.
    func csrf(_ client: any TestClientProtocol, from uri: String) async throws -> (cookie: String, token: String, page: String) {
        let page = try await client.execute(uri: uri, method: .get)
        let cookie = String(try #require(page.headers[.setCookie]).split(separator: ";")[0])
        return (cookie, String(cookie.dropFirst("edda_csrf=".count)), String(buffer: page.body))
    }

    func post(_ client: any TestClientProtocol, _ uri: String, cookie: String, _ body: String) async throws -> TestResponse {
        var headers = Self.form
        headers[.cookie] = cookie
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    @Test func retryAsksFirstSaysCompensationsRanAndIsRecordedWithItsArchivedFailure() async throws {
        let charges = Atomic<Int>(0)
        let release = Compensation("release") { (_, _: Int) in }
        let reserve = Activity("reserve") { (_: ActivityContext) -> Int in 1 }.onFailure(release)
        let charge = Activity("charge", retry: .noRetry) { (_: ActivityContext) -> Int in
            if charges.add(1, ordering: .relaxed).newValue == 1 { throw TerminalError("card declined") }
            return 2
        }
        let checkout = Workflow("checkout_saga") { (ctx: WorkflowContext) -> Int in
            let reserved = try await reserve(ctx)
            return reserved + (try await charge(ctx))
        }
        try await withTestApp { app in
            await #expect(throws: WorkflowFailedError.self) { try await app.start(checkout, instanceID: "s-1").result() }
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let instance = String(buffer: try await client.execute(uri: "/instances/s-1", method: .get).body)
                #expect(instance.contains("<form method=\"get\" action=\"/instances/s-1/retry\"><button type=\"submit\">Retry from the failed step…"))

                // The confirmation page changes nothing, and says what a retry does not undo.
                let (cookie, token, confirmation) = try await csrf(client, from: "/instances/s-1/retry")
                #expect(confirmation.contains("<h1>Retry s-1 from step charge:1?</h1>"), "\(confirmation)")
                #expect(confirmation.contains("TerminalError: card declined"))
                #expect(confirmation.contains("Compensations already ran: <code>compensate:reserve:1</code> (completed)"), "\(confirmation)")
                #expect(confirmation.contains("do not run again"))
                #expect(!confirmation.contains("id=\"no-worker\""), "this app runs the workflow")
                #expect(confirmation.contains("name=\"confirm\" value=\"yes\"") && confirmation.contains("Retry from step charge:1</button>"))
                #expect(try await app.instance("s-1")?.status == .failed, "asking changed nothing")

                // A post without the confirmation only shows the page again.
                let unconfirmed = try await post(client, "/instances/s-1/retry", cookie: cookie, "csrf=\(token)")
                #expect(unconfirmed.status == .ok)
                #expect(String(buffer: unconfirmed.body).contains("<h1>Retry s-1 from step charge:1?</h1>"))
                #expect(try await app.instance("s-1")?.status == .failed)

                let confirmed = try await post(client, "/instances/s-1/retry", cookie: cookie, "csrf=\(token)&confirm=yes")
                #expect(confirmed.status == .seeOther)
                #expect(confirmed.headers[.location] == "/instances/s-1")
                #expect(try await app.handle(for: checkout, instanceID: "s-1").result() == 3)

                // Who, when, which step; the failure that left the history is still shown, marked archived.
                let after = String(buffer: try await client.execute(uri: "/instances/s-1", method: .get).body)
                #expect(after.contains("<h2>Retries</h2>"), "\(after)")
                #expect(after.contains("</td><td>viewer</td><td>charge:1</td><td><span class=\"tag\">archived</span>"), "\(after)")
                #expect(after.contains("<tr class=\"failed archived\">") && after.contains("ActivityFailed <span class=\"tag\">archived</span>"))
                #expect(after.contains("TerminalError: card declined"))
                #expect(after.contains("Retried <span class=\"tag\">retried by hand</span>"))
                let retried = try #require(try await app.history(of: "s-1").last { $0.kind == .retried })
                let record = try #require(try retried.payload?.decode(RetryRecord.self))
                #expect(record.requestedBy == "viewer" && record.step == "charge:1" && record.compensationsRan == ["compensate:reserve:1"])
                #expect(record.failure?.error?.message == "card declined")

                let failedOnly = String(buffer: try await client.execute(uri: "/instances/s-1?failed=true", method: .get).body)
                #expect(failedOnly.contains("<tr class=\"failed archived\">"), "the archived failure is among the failures")
                let again = try await client.execute(uri: "/instances/s-1/retry", method: .get)
                #expect(again.status == .conflict)
                #expect(String(buffer: again.body).contains("not failed: there is nothing to retry"))
            }
        }
    }

    @Test func aRetryWhereNoWorkerRunsTheWorkflowSaysSoAndStaysRecorded() async throws {
        // The app registers no workflow, as `edda serve`'s does; the instance is another app's. It is
        // written before the app starts: its worker's first claim takes back leases of owners gone.
        let store = try SQLiteStore.inMemory()
        let lease = try await store.createLeasedInstance("x-1", workflowName: "elsewhere", owner: "gone")
        let failure = ErrorRecord(type: "TerminalError", message: "no")
        try await store.append(HistoryEvent(instanceID: "x-1", stepID: "ship:1", position: 1, name: "ship", kind: .activityFailed, error: failure), lease: lease)
        try await store.finishInstance(lease: lease, with: .failed(failure))
        try await withTestApp(store: store) { app in

            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let (cookie, token, confirmation) = try await csrf(client, from: "/instances/x-1/retry")
                #expect(confirmation.contains("id=\"no-worker\""), "\(confirmation)")
                #expect(confirmation.contains("The retry is recorded, but nothing runs it until an app that registers elsewhere runs"))
                #expect(!confirmation.contains("Compensations already ran"), "none ran")
                let confirmed = try await post(client, "/instances/x-1/retry", cookie: cookie, "csrf=\(token)&confirm=yes")
                #expect(confirmed.status == .seeOther)
                let page = String(buffer: try await client.execute(uri: "/instances/x-1", method: .get).body)
                #expect(page.contains("badge running"))
                #expect(page.contains("Nothing here runs this instance until an app that registers elsewhere runs on this database"), "\(page)")
                #expect(page.contains("</td><td>viewer</td><td>ship:1</td>"))
                #expect(try await app.instance("x-1")?.status == .running, "recorded and ready, for an app that runs it")

                let api = try await client.execute(uri: "/api/instances/x-1/history", method: .get)
                let history = try #require(try JSONSerialization.jsonObject(with: Data(api.body.readableBytesView)) as? [String: Any])
                let records = try #require(history["history"] as? [[String: Any]])
                let retried = try #require(records.last)
                #expect(retried["kind"] as? String == "Retried" && retried["step_id"] as? String == "ship:1")
                #expect((retried["payload"] as? [String: Any])?["by"] as? String == "viewer")
            }
        }
    }

    @Test func theAPIRecordsItsCallerAndSaysWhetherTheWorkflowIsServedHere() async throws {
        // Written before the app starts, as above.
        let store = try SQLiteStore.inMemory()
        let lease = try await store.createLeasedInstance("x-2", workflowName: "elsewhere", owner: "gone")
        try await store.finishInstance(lease: lease, with: .failed(ErrorRecord(type: "E", message: "outside a step")))
        try await withTestApp(store: store) { app in
            let server = Application(router: EddaHTTP(app: app, configuration: .init(bearerToken: "s3cret")).router())
            try await server.test(.router) { client in
                let response = try await client.execute(uri: "/api/instances/x-2/retry", method: .post, headers: [.authorization: "Bearer s3cret"])
                #expect(response.status == .accepted)
                let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                #expect(document["requested_by"] as? String == "api (bearer token)")
                #expect(document["served_here"] as? Bool == false)
                #expect(document["retried_step"] is NSNull)
                let record = try #require(try await app.history(of: "x-2").last?.payload?.decode(RetryRecord.self))
                #expect(record.requestedBy == "api (bearer token)" && record.step == nil && record.failure == nil)
            }
        }
    }

    @Test func eddaRetryRecordsTheCLIAndShowListsIt() async throws {
        try await withTemporaryDatabase { path in
            do {
                let store = try SQLiteStore(path: path)
                let lease = try await store.createLeasedInstance("c-1", workflowName: "elsewhere", owner: "gone")
                let failure = ErrorRecord(type: "TerminalError", message: "no")
                try await store.append(HistoryEvent(instanceID: "c-1", stepID: "ship:1", position: 1, name: "ship", kind: .activityFailed, error: failure), lease: lease)
                try await store.finishInstance(lease: lease, with: .failed(failure))
            }
            let retry = try await EddaBinary.run(["retry", "c-1", "--database", path])
            #expect(retry.status == 0, "\(retry.error)")
            #expect(retry.output.contains("c-1 is ready to run again from step ship:1; the retry is recorded in its history (by cli)."), "\(retry.output)")
            #expect(retry.output.contains("it runs when an app that registers workflow 'elsewhere' runs"), "\(retry.output)")
            let show = try await EddaBinary.run(["show", "c-1", "--database", path])
            let line = try #require(show.output.split(separator: "\n").first { $0.contains("Retried") }, "\(show.output)")
            #expect(line.contains("ship:1") && line.contains(#"{"by":"cli""#), "\(line)")
        }
    }
}
