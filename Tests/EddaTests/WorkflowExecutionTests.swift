@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Logging
import Testing

@Suite("Running workflows", .timeLimit(.minutes(1)))
struct WorkflowExecutionTests {
    let log = ExecutionLog()

    var createAccount: Activity<String, String, User> {
        let log = self.log
        return Activity("create_account") { (ctx, email: String, name: String) -> User in
            log.record("create_account")
            return User(userID: "u-\(name.lowercased())", email: email)
        }
    }

    var sendEmail: Activity<String, String, Bool> {
        let log = self.log
        return Activity("send_email") { (ctx, email: String, message: String) -> Bool in
            log.record("send_email")
            return true
        }
    }

    var signup: Workflow<String, String, SignupResult> {
        let createAccount = self.createAccount
        let sendEmail = self.sendEmail
        return Workflow("user_signup") { (ctx, email: String, name: String) -> SignupResult in
            let user = try await createAccount(ctx, email, name)
            _ = try await sendEmail(ctx, email, "Welcome, \(name)!")
            return SignupResult(userID: user.userID, status: "active")
        }
    }

    @Test(arguments: Backend.allCases)
    func workflowRunsAndRecordsEachStep(_ backend: Backend) async throws {
        let signup = self.signup
        let (handle, history, instance) = try await backend.withTestApp { app in
            let handle = try await app.start(signup, "ada@example.com", "Ada")
            _ = try await handle.result()
            return (handle, try await app.history(of: handle.instanceID), try await handle.instance())
        }
        #expect(!handle.instanceID.isEmpty)
        #expect(instance.status == .completed)
        #expect(try instance.output?.decode(SignupResult.self) == SignupResult(userID: "u-ada", status: "active"))
        #expect(instance.input.json == #"["ada@example.com","Ada"]"#)
        #expect(history.map(\.stepID) == ["create_account:1", "send_email:1"])
        #expect(history.map(\.position) == [1, 2])
        #expect(history.map(\.kind) == [.activityCompleted, .activityCompleted])
        #expect(try history[0].payload?.decode(User.self) == User(userID: "u-ada", email: "ada@example.com"))
        #expect(log.all == ["create_account", "send_email"])
    }

    @Test(arguments: Backend.allCases)
    func replayReturnsRecordedResultsWithoutRunningBodies(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let input = try JSONPayload.encode(["ada@example.com", "Ada"])
            let lease = try await store.createLeasedInstance("i1", workflowName: "user_signup", input: input, owner: "old")
            // The first run recorded create_account, then the process died.
            try await store.append(
                recorded("i1", "create_account:1", position: 1, name: "create_account", result: User(userID: "u-recorded", email: "x")),
                lease: lease
            )

            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(signup)
            let signup = self.signup
            let result = try await app.run { app in try await app.handle(for: signup, instanceID: "i1").result() }

            #expect(result == SignupResult(userID: "u-recorded", status: "active"))
            #expect(log.count("create_account") == 0)
            #expect(log.count("send_email") == 1)
            #expect(try await store.history(of: "i1").map(\.stepID) == ["create_account:1", "send_email:1"])
        }
    }

    @Test(arguments: Backend.allCases)
    func contextReportsReplayingAndCurrentStep(_ backend: Backend) async throws {
        struct Observation: Codable, Sendable, Equatable {
            var replayingBefore: [Bool]
            var steps: [Int]
        }
        let step = Activity("step") { (ctx, n: Int) -> Int in n }
        let observer = Workflow("observer") { (ctx) -> Observation in
            var observation = Observation(replayingBefore: [], steps: [])
            for n in 1...3 {
                observation.replayingBefore.append(ctx.isReplaying)
                _ = try await step(ctx, n)
                observation.steps.append(ctx.currentStep)
            }
            return observation
        }
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("o", workflowName: "observer", input: JSONPayload(json: "[]"), owner: "old")
            try await store.append(recorded("o", "step:1", position: 1, name: "step", result: 1), lease: lease)
            try await store.append(recorded("o", "step:2", position: 2, name: "step", result: 2), lease: lease)

            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(observer)
            let observation = try await app.run { app in try await app.handle(for: observer, instanceID: "o").result() }
            #expect(observation == Observation(replayingBefore: [true, true, false], steps: [1, 2, 3]))
        }
    }

    @Test(arguments: Backend.allCases)
    func recordedDateComesBackEqualOnReplay(_ backend: Backend) async throws {
        let stamp = Date(timeIntervalSince1970: 1_700_000_000.123456)
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("d", workflowName: "dated", input: JSONPayload(json: "[]"), owner: "old")
            try await store.append(recorded("d", "now:1", position: 1, name: "now", result: stamp), lease: lease)
            let now = Activity("now") { (ctx) -> Date in Date() }
            let dated = Workflow("dated") { (ctx) -> Bool in try await now(ctx) == stamp }
            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(dated)
            #expect(try await app.run { app in try await app.handle(for: dated, instanceID: "d").result() })
        }
    }

    @Test(arguments: Backend.allCases)
    func explicitIDsInLoops(_ backend: Backend) async throws {
        let log = self.log
        let processItem = Activity("process_item") { (ctx, item: String) -> String in
            log.record(item)
            return item.uppercased()
        }
        let batch = Workflow("batch_workflow") { (ctx, items: [String]) -> Int in
            var results: [String] = []
            for (i, item) in items.enumerated() {
                results.append(try await processItem(ctx, item, activityID: "process_item:\(i + 1)"))
            }
            return results.count
        }
        let history = try await backend.withTestApp { app in
            let handle = try await app.start(batch, ["a", "b", "c"])
            #expect(try await handle.result() == 3)
            return try await app.history(of: handle.instanceID)
        }
        #expect(history.map(\.stepID) == ["process_item:1", "process_item:2", "process_item:3"])
        #expect(log.all == ["a", "b", "c"])
    }

    @Test(arguments: Backend.allCases)
    func sameStepIDTwiceFailsTheInstance(_ backend: Backend) async throws {
        let step = Activity("step") { (ctx, n: Int) -> Int in n }
        let twice = Workflow("twice") { (ctx) -> Int in
            _ = try await step(ctx, 1, activityID: "same")
            return try await step(ctx, 2, activityID: "same")
        }
        let failure = try await backend.withTestApp { app in
            try await #require(throws: WorkflowFailedError.self) { try await app.start(twice).result() }
        }
        #expect(failure.error.type == "EngineError")
        #expect(failure.error.message.contains("'same' was used twice"))
    }

    @Test(arguments: Backend.allCases)
    func failedWorkflowReportsItsError(_ backend: Backend) async throws {
        struct PaymentDeclined: Error {}
        let failing = Workflow("failing") { (ctx) -> Int in throw PaymentDeclined() }
        let (failure, instance) = try await backend.withTestApp { app in
            let handle = try await app.start(failing)
            let failure = try await #require(throws: WorkflowFailedError.self) { try await handle.result() }
            return (failure, try await handle.instance())
        }
        #expect(failure.error.type == "PaymentDeclined")
        #expect(instance.status == .failed)
        #expect(instance.error?.type == "PaymentDeclined")
    }

    @Test(arguments: Backend.allCases)
    func listsInstancesByStatusAndName(_ backend: Backend) async throws {
        let ok = Workflow("ok") { (ctx, n: Int) -> Int in n }
        struct Boom: Error {}
        let bad = Workflow("bad") { (ctx) -> Int in throw Boom() }
        try await backend.withTestApp { app in
            for n in 1...3 { _ = try await app.start(ok, n).result() }
            _ = try? await app.start(bad).result()
            #expect(try await app.instances(status: .completed).count == 3)
            #expect(try await app.instances(status: .failed).map(\.workflowName) == ["bad"])
            #expect(try await app.instances(workflowName: "ok", limit: 2).count == 2)
            #expect(try await app.instances().count == 4)
            #expect(try await app.instances(status: .running).isEmpty)
        }
    }
}
