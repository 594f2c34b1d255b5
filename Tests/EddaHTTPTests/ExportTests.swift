import Edda
import EddaHTTP
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `edda export <id>` and `GET /api/instances/{id}/export`: one document, the same bytes.
@Suite("Export: CLI and HTTP", .timeLimit(.minutes(1)))
struct ExportTests {
    static let price = Activity("price") { (_: ActivityContext, order: String) -> Int in 100 }
    static let checkout = Workflow("checkout") { (ctx: WorkflowContext, order: String) -> Int in
        let total = try await price(ctx, order)
        return try await ctx.patched("new-tax-rule") ? total + 20 : total + 10
    }

    @Test func theCLIAndTheAPIExportTheSameDocument() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in
                #expect(try await app.start(Self.checkout, "o-1", instanceID: "o-1").result() == 120)

                let printed = try await EddaBinary.run(["export", "o-1", "--database", path])
                #expect(printed.status == 0, "\(printed.error)")
                let export = try HistoryExport(jsonData: Data(printed.output.utf8))
                #expect(export.instanceID == "o-1" && export.workflowName == "checkout" && export.status == .completed)
                #expect(export.output?.json == "120")
                #expect(export.history.map(\.kind) == [.activityCompleted, .patchMarker])
                #expect(export.history.map(\.stepID) == ["price:1", "edda.patch:new-tax-rule"])

                let file = path + ".history.json"
                let written = try await EddaBinary.run(["export", "o-1", "--database", path, "--output", file])
                #expect(written.status == 0 && written.output.isEmpty, "\(written.error)")
                #expect(try String(contentsOfFile: file, encoding: .utf8) == printed.output)

                let missing = try await EddaBinary.run(["export", "nobody", "--database", path])
                #expect(missing.status != 0 && missing.error.contains("No instance with ID nobody"), "\(missing.error)")

                try await Application(router: EddaHTTP(app: app).router()).test(.router) { client in
                    let response = try await client.execute(uri: "/api/instances/o-1/export", method: .get)
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                    #expect(String(buffer: response.body) == printed.output, "the API returns the bytes edda export prints")
                    let unknown = try await client.execute(uri: "/api/instances/nobody/export", method: .get)
                    #expect(unknown.status == .notFound)
                }
            }
        }
    }
}
