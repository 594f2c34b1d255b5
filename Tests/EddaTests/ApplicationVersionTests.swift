@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

@Suite("Application versions: which worker runs which instance", .timeLimit(.minutes(1)))
struct ApplicationVersionTests {
    static func configuration(_ version: String?, compatible: Set<String> = []) -> EddaApp.Configuration {
        var configuration = EddaApp.Configuration.testing
        configuration.applicationVersion = version
        configuration.compatibleVersions = compatible
        return configuration
    }

    /// An instance of version `version`, unleased and ready, as an app of that version would have started it.
    static func seed(_ store: any Store, _ id: String, workflow: String, version: String?) async throws {
        let new = NewInstance(
            instanceID: id, workflowName: workflow, serviceName: "test", input: JSONPayload(json: "[]"), applicationVersion: version
        )
        guard case .created = try await store.createInstance(new, leasedTo: nil) else {
            Issue.record("\(id) was not created")
            return
        }
    }

    static let child = Workflow("child") { (ctx) -> String in ctx.applicationVersion ?? "none" }
    static let parent = Workflow("parent") { (ctx) -> String in
        let started = try await ctx.startChild(child)
        return "\(ctx.applicationVersion ?? "none")/\(try await started.result())"
    }
    static let step = Activity("step") { (ctx, n: Int) -> Int in n }
    static let one = Workflow("one") { (ctx) -> Int in try await step(ctx, 1) }

    @Test(arguments: Backend.allCases)
    func instancesAndTheirChildrenKeepTheVersionTheyWereStartedWithAndForksTakeTheForkingApps(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await Self.seed(store, "old", workflow: "parent", version: "1")
            try await withTestApp(store: store, configuration: Self.configuration("2", compatible: ["1"])) { app in
                try app.register(Self.parent)
                try app.register(Self.child)
                try app.register(Self.one)
                #expect(try await app.start(Self.parent, instanceID: "new").result() == "2/2")
                #expect(try await app.instance("new")?.applicationVersion == "2")
                // Version 1 is declared compatible: this worker runs it, and its child keeps version 1.
                #expect(try await app.handle(for: Self.parent, instanceID: "old").result() == "1/1")
                let children = try await store.instances(matching: InstanceQuery(applicationVersions: ["1"])).instances
                #expect(Set(children.map(\.instanceID)).count == 2 && children.allSatisfy { $0.applicationVersion == "1" })

                // A fork runs today's code: it takes this app's version, whatever the original's.
                try await Self.seed(store, "one-old", workflow: "one", version: "1")
                #expect(try await app.handle(for: Self.one, instanceID: "one-old").result() == 1)
                try await app.fork("one-old", fromStep: "step:1", instanceID: "one-fork")
                #expect(try await app.handle(for: Self.one, instanceID: "one-fork").result() == 1)
                #expect(try await app.instance("one-fork")?.applicationVersion == "2")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aVersionedWorkerLeavesOtherVersionsAloneAndDoesNotCallThemUnresumable(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await Self.seed(store, "other", workflow: "one", version: "1")
            try await Self.seed(store, "stranger", workflow: "gone", version: "1")
            try await Self.seed(store, "legacy", workflow: "gone", version: nil)
            try await withTestApp(store: store, configuration: Self.configuration("2")) { app in
                try app.register(Self.one)
                #expect(try await app.start(Self.one, instanceID: "mine").result() == 1)
                #expect(try await app.instance("mine")?.applicationVersion == "2")
                // Unversioned instances are its business: "legacy" is reported; version 1's "stranger" is not.
                try await waitUntil { app.unresumableWorkflows["gone"] == 1 }
                try await Task.sleep(for: .milliseconds(200))   // a few polls
                let other = try #require(try await app.instance("other"))
                #expect(other.status == .running && other.leaseOwner == nil, "left alone, not failed")
                #expect(try await store.history(of: "other").isEmpty)
                let versions = try await app.applicationVersions()
                #expect(versions.map(\.version) == [nil, "1"])
                #expect(versions.map(\.unfinished) == [1, 2])
            }
            // A worker of its version (here an unversioned one, which runs any) finishes it.
            try await withTestApp(store: store, configuration: Self.configuration(nil)) { app in
                try app.register(Self.one)
                #expect(try await app.handle(for: Self.one, instanceID: "other").result() == 1)
                #expect(try await app.instance("other")?.applicationVersion == "1")
            }
        }
    }
}
