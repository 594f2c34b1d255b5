import Edda
import EddaHTTP
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The instance page's timeline, JSON trees, time-zone choice and history pages, as a browser
/// loads them (with `/static/viewer.js` running).
extension BrowserTests {
    struct Bulk: Codable, Sendable {
        var customer: String
        /// A JSON document kept as a string: the page shows it as its tree.
        var webhook: String
        var lines: [Int]
    }

    static let validate = Activity("validate_item") { (_: ActivityContext, index: Int) -> Int in index }
    static let chargeLine = Activity("charge_card") { (_: ActivityContext, index: Int) -> String in "receipt-\(index)" }
    static let notify = Activity("notify_warehouse", retry: RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(5))) {
        (context: ActivityContext, _: Int) -> Int in
        guard context.attempt > 2 else { throw Unavailable() }
        return context.attempt
    }
    static let ship = Activity("ship_line") { (_: ActivityContext, index: Int) -> Int in index }
    /// 250 + 1 + 120 + 1 + 128 = 500 steps: runs of similar steps, a timer, a retried step.
    static let bulk = Workflow("bulk_order") { (ctx: WorkflowContext, order: Bulk) -> Int in
        for line in 0..<250 { _ = try await validate(ctx, line) }
        try await ctx.sleep(for: .milliseconds(20))
        for line in 0..<120 { _ = try await chargeLine(ctx, line) }
        _ = try await notify(ctx, 0)
        for line in 0..<128 { _ = try await ship(ctx, line) }
        return order.lines.count
    }

    struct Unavailable: Error {}

    @Test func anInstanceWithFiveHundredStepsShowsItsTimelineGroupedItsValuesAsTreesAndTheTimeChoice() async throws {
        let chromium = try #require(Chromium.path, "chromium is not installed: .ci/run installs it (apt-get install chromium)")
        try await withTestApp { app in
            let order = Bulk(customer: "<ACME & Co>", webhook: #"{"event":"order.created","lines":[1,2,3],"meta":{"source":"shop"}}"#, lines: [1, 2, 3])
            #expect(try await app.start(Self.bulk, order, instanceID: "ORD-500").result() == 3)
            #expect(try await app.history(of: "ORD-500").count == 502, "500 steps, and the two failed attempts")

            let server = Application(router: EddaHTTP(app: app).router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await server.test(.live) { client in
                let base = "http://127.0.0.1:\(try #require(client.port))"
                let page = try await Chromium.dumpDOM(chromium, "\(base)/instances/ORD-500")

                // The timeline: 500 steps in a few rows, groups that open onto their steps.
                #expect(page.contains("500 steps over "), "\(page.prefix(2_000))")
                #expect(page.contains(">validate_item ×250<") && page.contains(">charge_card ×120<") && page.contains(">ship_line ×128<"))
                #expect(page.components(separatedBy: "<details class=\"tl-group tl-role-activity\">").count - 1 == 3)
                #expect(page.contains("<title>charge_card ×120, "), "the group's span on hover")
                #expect(page.contains("<span class=\"tl-label\" title=\"charge_card:1\">charge_card</span>"), "each step's ID on hover")
                #expect(page.contains("<div class=\"tl-row tl-role-wait\"><span class=\"tl-label\" title=\"edda.sleep:1\">"), "the timer, marked a wait")
                #expect(page.contains("notify_warehouse <small>3 attempts</small>") && page.contains("class=\"tl-backoff\""), "attempts and backoffs")

                // Values as trees: collapsible, the JSON string as its tree, escaped, with a Copy button the script showed.
                #expect(page.contains("<details class=\"j\" open=\"\"><summary>"), "collapsible nodes")
                #expect(page.contains("<span class=\"j-key\">webhook</span>: <span class=\"tag\" title=\"This string holds JSON: shown as its tree\">JSON in a string</span>"))
                #expect(page.contains("<span class=\"j-key\">source</span>: <span class=\"j-str\">\"shop\"</span>"))
                #expect(page.contains("<span class=\"j-str\">\"&lt;ACME &amp; Co&gt;\"</span>") && !page.contains("<ACME"), "user data stays text")
                #expect(page.contains("title=\"Copy the value\">Copy</button>"), "the script showed the Copy buttons")

                // The time-zone choice, shown by the script, UTC by default; times as <time>.
                #expect(page.contains("<span id=\"time-zone\" class=\"zone\">Times: "), "the script showed the choice")
                #expect(page.contains("data-zone=\"utc\" aria-pressed=\"true\">UTC</button>"))
                #expect(page.contains("<time datetime=\"") && page.contains(" UTC</time>"))

                // The history: the latest 200 records, with the earlier ones a link away.
                #expect(page.contains("<a href=\"/instances/ORD-500?before="), "\(page.suffix(1_000))")
                #expect(!page.contains("Later records →"), "the latest page has none after it")
                let href = try #require(
                    page.components(separatedBy: "<a href=\"").dropFirst().first { $0.hasPrefix("/instances/ORD-500?before=") }?.split(separator: "\"").first
                )
                let earlier = try await Chromium.dumpDOM(chromium, "\(base)\(href)")
                #expect(earlier.contains("Later records →") && earlier.contains("← Earlier records"), "a page in the middle links both ways")
                #expect(earlier.components(separatedBy: "<tr").count - 2 == 200, "200 rows and the header")

                if let directory = ProcessInfo.processInfo.environment["EDDA_SCREENSHOT_DIR"] {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    try await Chromium.screenshot(chromium, "\(base)/instances/ORD-500", to: "\(directory)/viewer-timeline.png")
                }
            }
        }
    }
}
