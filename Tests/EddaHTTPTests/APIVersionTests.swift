@_spi(EddaStores) import Edda
import EddaHTTP
import EddaSQLite
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Application versions through the JSON API and the viewer: shown, filtered by, counted.
@Suite("HTTP: application versions", .timeLimit(.minutes(1)))
struct APIVersionTests {
    static let greet = Workflow("greet") { (ctx, name: String) -> String in "Hello, \(name)!" }

    @Test func anInstancesVersionIsShownFilteredByAndCountedWhileUnfinished() async throws {
        var configuration = EddaApp.Configuration.testing
        configuration.applicationVersion = "7"
        let store = try SQLiteStore.inMemory()
        let api = APITests()
        try await withTestApp(store: store, configuration: configuration) { app in
            try app.register(Self.greet)
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                #expect(try await app.start(Self.greet, "Ada", instanceID: "v-7").result() == "Hello, Ada!")
                // An instance of version 6, which this version-7 worker leaves alone.
                let old = NewInstance(
                    instanceID: "v-6", workflowName: "greet", serviceName: "test", input: try JSONPayload.encode(["Bo"]), applicationVersion: "6"
                )
                _ = try await store.createInstance(old, leasedTo: nil)

                let shown = try api.json(try await client.execute(uri: "/api/instances/v-7", method: .get))
                #expect(shown["app_version"] as? String == "7")
                let listed = try api.json(try await client.execute(uri: "/api/instances?version=6", method: .get))
                #expect((listed["instances"] as? [[String: Any]])?.compactMap { $0["instance_id"] as? String } == ["v-6"], "\(listed)")
                let versions = try api.json(try await client.execute(uri: "/api/versions", method: .get))["versions"] as? [[String: Any]]
                #expect(versions?.count == 1, "only version 6 has an unfinished instance: \(versions ?? [])")
                #expect(versions?.first?["version"] as? String == "6" && versions?.first?["unfinished"] as? Int == 1)
                #expect(try await app.instance("v-6")?.status == .running && app.unresumableWorkflows.isEmpty)

                let page = String(buffer: try await client.execute(uri: "/instances/v-7", method: .get).body)
                #expect(page.contains("<dt>Version</dt><dd id=\"version\"><a href=\"/?version=7\">7</a></dd>"), "\(page)")
                let list = String(buffer: try await client.execute(uri: "/?version=6", method: .get).body)
                #expect(list.contains("v-6") && !list.contains("v-7") && list.contains("id=\"of-version\""))
            }
        }
    }
}
