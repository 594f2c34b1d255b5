import Dispatch
import Edda
import EddaHTTP
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The viewer in a real browser: headless Chromium loads the pages from a live server. CI
/// (`EDDA_REQUIRE_BROWSER=1`, set by `.ci/run`, which installs Debian's `chromium`) never skips
/// these; elsewhere they run when a Chromium is installed.
///
/// `EDDA_SCREENSHOT_DIR=docs/images swift test --filter BrowserTests` refreshes the README's screenshots.
@Suite("HTTP: the viewer in headless Chromium", .timeLimit(.minutes(2)), .enabled(if: Chromium.path != nil || Chromium.required))
struct BrowserTests {
    enum Size: String, Codable, Sendable, CaseIterable { case small, large }
    struct Order: Codable, Sendable {
        var orderID: String
        var size: Size
        var items: [String]
        var giftNote: String?
    }

    static let reserve = Activity("reserve_stock") { (_: ActivityContext, order: Order) -> Int in order.items.count }
    static let charge = Activity("charge_card", retry: RetryPolicy(maxAttempts: 2, initialInterval: .milliseconds(1))) {
        (_: ActivityContext, order: Order) -> String in
        guard order.orderID != "ORD-declined" else { throw TerminalError("card declined") }
        return "receipt-\(order.orderID)"
    }
    static let process = Workflow("order_processing") { (ctx: WorkflowContext, order: Order) -> String in
        _ = try await reserve(ctx, order)
        return try await charge(ctx, order)
    }

    @Test func theListAnInstancePageAndTheStartFormRender() async throws {
        let chromium = try #require(Chromium.path, "chromium is not installed: .ci/run installs it (apt-get install chromium)")
        try await withTestApp { app in
            _ = try await app.start(Self.process, Order(orderID: "ORD-1001", size: .small, items: ["book"], giftNote: nil), instanceID: "ORD-1001").result()
            let declined = try await app.start(Self.process, Order(orderID: "ORD-declined", size: .large, items: ["lamp", "desk"], giftNote: "<b>hi</b>"), instanceID: "ORD-declined")
            await #expect(throws: WorkflowFailedError.self) { try await declined.result() }

            let server = Application(router: EddaHTTP(app: app).router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await server.test(.live) { client in
                let base = "http://127.0.0.1:\(try #require(client.port))"

                let list = try await Chromium.dumpDOM(chromium, "\(base)/")
                #expect(list.contains("Workflow instances"))
                #expect(list.contains("ORD-1001") && list.contains("ORD-declined"))
                #expect(list.contains("class=\"badge failed\">failed</span>") && list.contains("class=\"badge completed\">completed</span>"))

                let instance = try await Chromium.dumpDOM(chromium, "\(base)/instances/ORD-declined")
                #expect(instance.contains("card declined"))
                #expect(instance.contains("Retry from the failed step"))
                #expect(instance.contains("<svg") && instance.contains("charge_card:1"))
                #expect(instance.contains("&lt;b&gt;hi&lt;/b&gt;") && !instance.contains("<b>hi</b>"), "user data stays text in the browser's DOM")

                // Retry asks first, on a page of its own; loading it changes nothing.
                #expect(instance.contains("action=\"/instances/ORD-declined/retry\""))
                let confirmation = try await Chromium.dumpDOM(chromium, "\(base)/instances/ORD-declined/retry")
                #expect(confirmation.contains("Retry ORD-declined from step charge_card:1?"), "\(confirmation)")
                #expect(confirmation.contains("name=\"confirm\" value=\"yes\"") && confirmation.contains("Back, without retrying"))
                #expect(try await app.instance("ORD-declined")?.status == .failed, "the confirmation page changed nothing")

                // The viewer's own errors are pages, the error next to its field.
                let badFilter = try await Chromium.dumpDOM(chromium, "\(base)/?created_from=someday")
                #expect(badFilter.contains("value=\"someday\"></label> <span class=\"field-error\">created_from must be a date"), "\(badFilter)")

                let form = try await Chromium.dumpDOM(chromium, "\(base)/workflows/order_processing/start")
                #expect(form.contains("name=\"a0.orderID\""))
                #expect(form.contains("<option value=\"1\">large</option>"))
                #expect(form.contains("name=\"a0.items.0\""))
                #expect(form.contains("giftNote <small>(optional)</small>"))

                let directory = ProcessInfo.processInfo.environment["EDDA_SCREENSHOT_DIR"]
                    ?? FileManager.default.temporaryDirectory.appendingPathComponent("edda-shots-\(UUID().uuidString)").path
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for (name, path) in [("viewer-list", "/"), ("viewer-instance", "/instances/ORD-declined"), ("viewer-start-form", "/workflows/order_processing/start")] {
                    let file = "\(directory)/\(name).png"
                    try await Chromium.screenshot(chromium, "\(base)\(path)", to: file)
                    let png = try Data(contentsOf: URL(fileURLWithPath: file))
                    #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 5_000, "\(name): not a rendered PNG")
                }
            }
        }
    }
}

extension BrowserTests {
    static let payment = Workflow("await_payment") { (ctx: WorkflowContext, _: String) -> Int in
        try await ctx.waitForEvent(type: "payment.completed", as: Int.self, timeout: .seconds(600)).data
    }
    static let fulfil = Workflow("fulfil_order") { (ctx: WorkflowContext, order: String) -> Int in try await ctx.runChild(payment, order) }

    /// A waiting parent, its waiting child (an ID with `/` and a space), their links both ways, the
    /// send-event form, and the bulk cancel's confirmation, as a browser loads them.
    @Test func aWaitingInstanceItsChildAndTheBulkCancelConfirmationRender() async throws {
        let chromium = try #require(Chromium.path, "chromium is not installed: .ci/run installs it (apt-get install chromium)")
        try await withTestApp { app in
            _ = try await app.start(Self.fulfil, "ORD-2002", instanceID: "ORD 2002")
            var childID: String?
            for _ in 0..<500 where childID == nil {
                if let wait = try await app.instance("ORD 2002")?.waitingFor, wait.kind == .child, let id = wait.awaited,
                    try await app.instance(id)?.waitingFor != nil
                {
                    childID = id
                } else {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            let child = try #require(childID, "the parent and its child never both waited")

            let server = Application(router: EddaHTTP(app: app).router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await server.test(.live) { client in
                let base = "http://127.0.0.1:\(try #require(client.port))"
                let parent = try await Chromium.dumpDOM(chromium, "\(base)/instances/ORD%202002")
                #expect(parent.contains("class=\"badge waiting\">waiting</span>"))
                #expect(parent.contains("Waiting for child <code>\(child)</code> to finish"), "\(parent)")
                // The viewer's own link to the child, followed as the browser would.
                let href = try #require(
                    parent.components(separatedBy: "<a href=\"").dropFirst().first { $0.hasPrefix("/instances/ORD%202002%2F") }?.split(separator: "\"").first,
                    "no child link in: \(parent)"
                )
                let page = try await Chromium.dumpDOM(chromium, "\(base)\(href)")
                #expect(page.contains("Waiting for event <code>payment.completed</code> · timeout in 9 min"), "\(page)")
                #expect(page.contains("<dd id=\"parent\"><a href=\"/instances/ORD%202002\">ORD 2002</a> <span class=\"badge waiting\">"))
                #expect(page.contains("name=\"type\" size=\"30\" value=\"payment.completed\""), "the send-event form, its type filled in")

                let confirmation = try await Chromium.dumpDOM(chromium, "\(base)/cancel?workflow=await_payment")
                #expect(confirmation.contains("Cancel 1 instance?"), "\(confirmation)")
                #expect(try await app.instance(child)?.cancelRequested == false, "the confirmation page changed nothing")

                if let directory = ProcessInfo.processInfo.environment["EDDA_SCREENSHOT_DIR"] {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    try await Chromium.screenshot(chromium, "\(base)\(href)", to: "\(directory)/viewer-waiting.png")
                }
            }
        }
    }
}

/// Runs the system's Chromium headless.
enum Chromium {
    static let path: String? = {
        let candidates = [ProcessInfo.processInfo.environment["EDDA_CHROMIUM"], "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    static var required: Bool { ProcessInfo.processInfo.environment["EDDA_REQUIRE_BROWSER"] == "1" }

    static func dumpDOM(_ chromium: String, _ url: String) async throws -> String {
        try await run(chromium, ["--dump-dom", url])
    }

    static func screenshot(_ chromium: String, _ url: String, to file: String) async throws {
        _ = try await run(chromium, ["--screenshot=\(file)", "--window-size=1100,800", "--hide-scrollbars", url])
    }

    /// Runs Chromium with a throw-away profile (as root it needs `--no-sandbox`), returning its output.
    static func run(_ chromium: String, _ arguments: [String]) async throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("edda-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=\(profile.path)"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // A browser that never finishes (a request left open under `--virtual-time-budget`) is
        // stopped: the test then fails on its output instead of hanging the whole run.
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { if process.isRunning { process.terminate() } }
        // Read while it runs (a full pipe would stall it), on a Dispatch thread: a blocking read in a
        // task (detached or not) holds one of the cooperative pool's threads, and on a 2-core machine
        // two browser tests at once held both, so the live servers they load could not answer.
        let data = await withCheckedContinuation { (continuation: CheckedContinuation<Data, Never>) in
            DispatchQueue.global().async {
                let data = output.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                continuation.resume(returning: data)
            }
        }
        guard process.terminationStatus == 0 else {
            throw ChromiumError(message: "chromium \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    struct ChromiumError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
