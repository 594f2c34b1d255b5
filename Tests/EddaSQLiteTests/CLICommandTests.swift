import Edda
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import GRDB
import Testing

/// The built `edda` binary's commands on SQLite files: wide characters in tables.
@Suite("CLI: edda commands, --json, usage and tables", .timeLimit(.minutes(1)))
struct CLICommandTests {
    static let hello = Activity("hello") { (_: ActivityContext, name: String) -> String in
        guard !name.isEmpty else { throw TerminalError("no name") }
        return "Hello, \(name)!"
    }
    static let greet = Workflow("greet") { (ctx: WorkflowContext, name: String) -> String in try await hello(ctx, name) }

    func edda(_ arguments: [String]) async throws -> EddaBinary.Result {
        try await EddaBinary.run(arguments)
    }

    /// Each line of `text` as a JSON object.
    func objects(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Creates `count` unclaimed instances (no worker runs them).
    func create(_ count: Int, in store: SQLiteStore, workflow: String = "batch", id: (Int) -> String = { "i-\($0)" }) async throws {
        for index in 0..<count {
            _ = try await store.createInstance(
                NewInstance(instanceID: id(index), workflowName: workflow, serviceName: "test", input: JSONPayload(json: "[\(index)]")), leasedTo: nil
            )
        }
    }

    /// Terminal columns of the test's strings: CJK and emoji take two.
    func columns(_ text: Substring) -> Int {
        text.unicodeScalars.reduce(0) { $0 + ($1.value >= 0x1100 && $1.value != 0x2026 ? 2 : 1) }
    }

    static let pay = Activity("支払い") { (_: ActivityContext, amount: Int) -> Int in amount }
    static let ship = Activity("ship") { (_: ActivityContext, amount: Int) -> Int in amount }
    static let order = Workflow("注文処理") { (ctx: WorkflowContext, amount: Int) -> Int in try await ship(ctx, try await pay(ctx, amount)) }

    @Test func tablesAlignWideCharacters() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await create(1, in: store, workflow: "注文処理", id: { _ in "注文-1" })
            try await create(1, in: store, workflow: "🚀launch", id: { _ in "🚀-2" })
            try await create(1, in: store, workflow: "plain", id: { _ in "plain-3" })
            let list = try await edda(["list", "--database", path])
            #expect(list.status == 0, "\(list.error)")
            let rows = list.output.split(separator: "\n").filter { $0.contains("running") }
            #expect(rows.count == 3, "\(list.output)")
            let statusColumns = Set(rows.map { row in columns(row[..<row.range(of: "running")!.lowerBound]) })
            #expect(statusColumns.count == 1, "STATUS starts at columns \(statusColumns):\n\(list.output)")

            // A file of its own: the app's worker would run the listed 注文処理 instance.
            let orders = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("orders.sqlite").path
            try await withTestApp(store: try SQLiteStore(path: orders)) { app in
                let result = try await app.start(Self.order, 5, instanceID: "o-1").result()
                #expect(result == 5)
            }
            let show = try await edda(["show", "o-1", "--database", orders])
            let steps = show.output.split(separator: "\n").filter { $0.contains("ActivityCompleted") }
            #expect(steps.count == 2, "\(show.output)")
            let kindColumns = Set(steps.map { row in columns(row[..<row.range(of: "ActivityCompleted")!.lowerBound]) })
            #expect(kindColumns.count == 1, "KIND starts at columns \(kindColumns):\n\(show.output)")
        }
    }
}
