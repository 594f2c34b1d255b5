import Edda
import EddaHTTP
import EddaTestSupport
import EddaTesting
import EddaViewerExample
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `edda-example-viewer` (Examples/Viewer): its workflows behind the viewer's start forms, what
/// they do, and the built program binding loopback and stopping cleanly on SIGINT and SIGTERM.
@Suite("Example: edda-example-viewer", .timeLimit(.minutes(1)))
struct ViewerExampleTests {
    /// Form fields each workflow's start form must have (its input type's members, as the form names them).
    static let fields: [String: [String]] = [
        "place_order": ["a0.orderID", "a0.customerEmail", "a0.lines.0.sku", "a0.lines.0.quantity", "a0.cardNumber", "a0.shipping"],
        "collect_payment": ["a0.invoiceID", "a0.customerEmail", "a0.amount", "a0.dueInMinutes"],
        "onboard_customer": ["a0.email", "a0.name", "a0.plan", "a0.referralCode"],
        "send_welcome_kit": ["a0.accountID", "a0.email", "a0.plan"],
    ]

    @Test func everyWorkflowHasAStartFormGeneratedFromItsInput() async throws {
        try await withTestApp { app in
            try ViewerExample.register(on: app)
            #expect(Set(app.registeredWorkflowNames) == Set(ViewerExample.workflowNames))
            #expect(Set(ViewerExample.workflowNames) == Set(Self.fields.keys))
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let index = String(buffer: try await client.execute(uri: "/workflows", method: .get).body)
                for (name, fields) in Self.fields {
                    #expect(index.contains("href=\"/workflows/\(name)/start\""), "\(name) is not listed:\n\(index)")
                    let page = try await client.execute(uri: "/workflows/\(name)/start", method: .get)
                    #expect(page.status == .ok, "\(name): \(page.status)")
                    let html = String(buffer: page.body)
                    for field in fields {
                        #expect(html.contains("name=\"\(field)\""), "\(name)'s form has no field \(field)")
                    }
                    #expect(!html.contains("textarea name=\"a0\""), "\(name)'s input fell back to a JSON text field")
                }
                // The enums are menus of their cases.
                let order = String(buffer: try await client.execute(uri: "/workflows/place_order/start", method: .get).body)
                #expect(order.contains("<select name=\"a0.shipping\"") && order.contains(">express<"), "\(order)")
            }
        }
    }

    @Test func theSamplesCompleteCompensateWaitAndRunAChild() async throws {
        try await withTestApp { app in
            try ViewerExample.register(on: app)
            let ids = try await ViewerExample.startSamples(on: app)
            #expect(ids.count == 4)

            let confirmed = try await app.handle(for: ViewerExample.placeOrder, instanceID: "sample-order-ORD-1001").result()
            #expect(confirmed.orderID == "ORD-1001" && confirmed.trackingNumber.hasPrefix("STD-ORD-1001-"), "\(confirmed)")

            await #expect(throws: WorkflowFailedError.self) {
                _ = try await app.handle(for: ViewerExample.placeOrder, instanceID: "sample-order-ORD-1002").result()
            }
            let declined = try await app.history(of: "sample-order-ORD-1002")
            #expect(declined.contains { $0.kind == .compensationCompleted && $0.name == "release_stock" }, "\(declined.map(\.name))")
            #expect(try await app.instance("sample-order-ORD-1002")?.error?.message.contains("card declined") == true)

            let invoice = "sample-invoice-INV-2001"
            let payment = try CloudEvent(type: "payment.received", source: "/bank", json: ViewerExample.Payment(amount: 59.80, reference: "TX-9"))
            _ = try await app.sendEvent(payment, to: invoice)
            #expect(try await app.handle(for: ViewerExample.collectPayment, instanceID: invoice).result() == "paid TX-9")

            let onboarded = try await app.handle(for: ViewerExample.onboardCustomer, instanceID: "sample-signup-cy").result()
            #expect(onboarded.welcome == ["welcome email to cy@example.com", "team workspace for \(onboarded.accountID)"], "\(onboarded)")
            var childrenQuery = InstanceQuery()
            childrenQuery.parentInstanceID = "sample-signup-cy"
            let children = try await app.instances(matching: childrenQuery).instances
            #expect(children.map(\.workflowName) == ["send_welcome_kit"] && children.first?.status == .completed)
        }
    }

    @Test func anInvalidOrderIsRefusedNamingItsField() async throws {
        try await withTestApp { app in
            try ViewerExample.register(on: app)
            let order = ViewerExample.Order(
                orderID: "1001", customerEmail: "ada@example.com", lines: [], cardNumber: "4242424242424242", shipping: .standard
            )
            do {
                _ = try await app.start(ViewerExample.placeOrder, order)
                Issue.record("an order ID without ORD- started")
            } catch let error as EngineError {
                #expect(error.code == .invalidInput && error.message.contains("orderID"), "\(error)")
            }
        }
    }

    /// Runs the built program on a new database and a free port, opens a start form through the
    /// URL it prints, then stops it with `signal`: it exits 0 after saying it stopped.
    @Test(arguments: [SIGINT, SIGTERM])
    func theProgramServesLoopbackAndStopsCleanly(signal: Int32) async throws {
        try await withTemporaryDatabase { database in
            let process = Process()
            process.executableURL = try EddaBinary.executable(named: "edda-example-viewer")
            process.arguments = ["--database", database, "--port", "0"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            let exited = AsyncStream<Int32> { continuation in
                process.terminationHandler = { continuation.yield($0.terminationStatus) }
            }
            try process.run()
            defer { if process.isRunning { process.terminate() } }

            let line = await CLIServerTests.firstLine(of: output.fileHandleForReading)
            let url = try #require(line.firstMatch(of: /http:\/\/127\.0\.0\.1:(\d+)\//), "no loopback URL in: \(line)")
            let port = try #require(Int(url.1))
            let status = try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                try await client.execute(TestClient.Request("/workflows/place_order/start", method: .get, authority: "127.0.0.1:\(port)")).head.status
            }
            #expect(status == .ok)

            kill(process.processIdentifier, signal)
            var statuses = exited.makeAsyncIterator()
            #expect(await statuses.next() == 0)
            let rest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(rest.contains("stopped"), "\(rest)")
            // The samples were started in the file.
            #expect(try await EddaBinary.run(["list", "--database", database, "--json"]).output.contains("sample-order-ORD-1001"))
        }
    }
}
