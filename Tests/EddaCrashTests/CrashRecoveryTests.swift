#if canImport(Glibc)
import Glibc
#endif
@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import Foundation
import EddaTestSupport
import GRDB
import Testing

/// Kills a real worker process with SIGKILL in the middle of its workflows, then lets a new process
/// finish them on the same SQLite file.
@Suite("Crash recovery (SIGKILL)", .serialized, .timeLimit(.minutes(3)))
struct CrashRecoveryTests {
    static let instances = 4
    static let steps = 8

    @Test func killedWorkerResumesWithoutRepeatingRecordedSteps() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("crash.sqlite").path
        let executions = directory.appendingPathComponent("executions.log").path
        let arguments = ["steps", database, executions, "\(Self.instances)", "\(Self.steps)", "100"]

        // 1. Start a worker and kill it once half the steps ran. Its steps stall from then on, so
        //    the kill lands mid-run however slow the machine (a starved test process cannot miss it).
        let half = Self.instances * Self.steps / 2
        let first = try launchWorker(arguments + ["\(half)"])
        try await waitUntil(timeout: .seconds(60)) { lines(of: executions).count >= half }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(first.terminationReason == .uncaughtSignal)
        #expect(first.terminationStatus == SIGKILL)

        let store = try SQLiteStore(path: database)
        let recordedBeforeRestart = try await recordedSteps(store)
        let executedBeforeRestart = lines(of: executions)
        #expect(!recordedBeforeRestart.isEmpty)
        #expect(recordedBeforeRestart.count < Self.instances * Self.steps, "the kill must land before everything finished")
        #expect(try await store.instances(matching: InstanceQuery(status: .running)).instances.count > 0)

        // 2. A new process on the same file finishes the work.
        let second = try launchWorker(arguments)
        try await waitUntil(timeout: .seconds(120)) { !second.isRunning }
        #expect(second.terminationReason == .exit)
        #expect(second.terminationStatus == 0)

        // 3. Every instance completed, with every step recorded once.
        let instances = try await store.instances(matching: InstanceQuery()).instances
        #expect(instances.count == Self.instances)
        #expect(instances.allSatisfy { $0.status == .completed })
        #expect(instances.allSatisfy { $0.output?.json == "\((1...Self.steps).reduce(0, +))" })
        let recordedAfter = try await recordedSteps(store)
        #expect(recordedAfter.count == Self.instances * Self.steps)

        // 4. Steps recorded before the kill ran exactly once; the step in flight at the kill (at most
        //    one per instance) ran at most twice; nothing else ran twice.
        var counts: [String: Int] = [:]
        for line in lines(of: executions) { counts[line, default: 0] += 1 }
        for step in recordedBeforeRestart {
            #expect(counts[step] == 1, "\(step) was recorded before the kill and must not run again")
        }
        for step in recordedAfter {
            #expect((1...2).contains(counts[step] ?? 0), "\(step) ran \(counts[step] ?? 0) times")
        }
        let repeated = counts.filter { $0.value > 1 }.map(\.key)
        #expect(repeated.count <= Self.instances)
        for step in repeated {
            #expect(executedBeforeRestart.contains(step) && !recordedBeforeRestart.contains(step))
        }
    }

    @Test func secondWorkerProcessOnTheSameFileIsRefused() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("owned.sqlite").path
        let executions = directory.appendingPathComponent("executions.log").path

        let worker = try launchWorker(["steps", database, executions, "1", "200", "50"])
        defer {
            kill(worker.processIdentifier, SIGKILL)
            worker.waitUntilExit()
        }
        try await waitUntil(timeout: .seconds(60)) { !lines(of: executions).isEmpty }
        let store = try SQLiteStore(path: database)
        let error = try await #require(throws: StoreError.self) { try await store.attachWorker("intruder") }
        #expect(error.code == .databaseInUse)
        #expect(error.message.contains("pid \(worker.processIdentifier)"))
    }
}

extension CrashRecoveryTests {
    @Test func killedDuringRetryBackoffContinuesTheAttemptCount() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("retry.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["retry", database, executions])
            let store = try SQLiteStore(path: database)
            // Kill once attempt 2's failure is recorded: the worker is then in its 1 s backoff. (At least
            // 2: a poll that came late sees 3, and the expectation below says so instead of a time-out.)
            try await waitUntil(timeout: .seconds(60)) {
                (try? await store.history(of: "retry-1").filter { $0.kind == .attemptFailed }.count) ?? 0 >= 2
            }
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)
            #expect(lines(of: executions) == ["attempt 1", "attempt 2"])

            let second = try launchWorker(["retry", database, executions])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            #expect(lines(of: executions) == ["attempt 1", "attempt 2", "attempt 3", "attempt 4", "attempt 5"])
            let instance = try #require(try await store.instance("retry-1"))
            #expect(instance.status == .completed)
            #expect(instance.output?.json == "5")
            let outcome = try #require(try await store.history(of: "retry-1").last)
            #expect(outcome.kind == .activityCompleted)
            #expect(outcome.retry?.totalAttempts == 5)
            #expect(outcome.retry?.errors.count == 4)
            #expect((outcome.retry?.totalDurationMilliseconds ?? 0) >= 3300, "backoffs of 0.3, 1, 1 and 1 s, measured across both processes")
        }
    }

    /// A workflow waits on a durable timer (released: no process holds it); the worker is killed
    /// during the wait and a new one fires the timer at its recorded deadline.
    @Test func aTimerSurvivesSIGKILLAndFiresAtItsRecordedDeadline() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("timer.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["timer", database, executions, "1500"])
            let store = try SQLiteStore(path: database)
            // Kill once the run has ended as waiting: the instance is released until the deadline.
            try await waitUntil(timeout: .seconds(60)) { (try? await store.instance("timer-1"))??.readyAt != nil }
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)
            let waiting = try #require(try await store.instance("timer-1"))
            let deadline = try #require(waiting.readyAt, "the instance waits, released, until the deadline")
            #expect(waiting.leaseOwner == nil)

            let restartedAt = Date()
            let second = try launchWorker(["timer", database, executions, "1500"])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            #expect(lines(of: executions) == ["before", "after"], "the step before the timer did not run again")
            let history = try await store.history(of: "timer-1")
            #expect(history.map(\.stepID) == ["before:1", "edda.sleep:1", "after:1"])
            // On time, by the recorded times: the step after the timer is recorded after the deadline,
            // and soon after it (the new worker learned the deadline from the store, not a coarse poll).
            let after = try #require(history.last?.recordedAt)
            print("Timer after SIGKILL: the next step was recorded \(Int(after.timeIntervalSince(deadline) * 1000)) ms after the deadline")
            #expect(after >= deadline)
            // Generous: on a loaded machine the new process may start after the deadline.
            let due = max(deadline, restartedAt)
            #expect(after.timeIntervalSince(due) < 5, "fired \(after.timeIntervalSince(due)) s after it was due in the new process")
            #expect(try await store.instance("timer-1")?.status == .completed)
        }
    }

    @Test func aRunResumedAfterASIGKILLJoinsTheTraceThatStartedIt() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("traced.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["traced", database, executions, "start"])
            try await waitUntil(timeout: .seconds(60)) { lines(of: executions).contains("second stalls") }
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)
            let caller = try #require(lines(of: executions).first { $0.hasPrefix("# caller ") }).split(separator: " ")

            // Another process, with a tracer of its own, resumes the instance from the store.
            let second = try launchWorker(["traced", database, executions, "resume"])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            let run = try #require(lines(of: executions).first { $0.hasPrefix("# run ") }).split(separator: " ")
            #expect(run[2] == caller[2], "the resumed run is in the starter's trace: \(run) vs \(caller)")
            #expect(run[3] == caller[3], "and a child of the span that started the instance")
            #expect(lines(of: executions).filter { $0 == "first" }.count == 1, "the recorded step did not run again")
        }
    }

    @Test func aChildsResultReachesItsParentAcrossASIGKILL() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("child.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["child", database, executions])
            let store = try SQLiteStore(path: database)
            // Kill once both wait, released: the parent for its child, the child for its event.
            try await waitUntil(timeout: .seconds(60)) {
                let parent = (try? await store.instance("parent-1")) ?? nil
                let child = (try? await store.instance("parent-1/edda.child:1")) ?? nil
                return parent?.readyAt != nil && child?.readyAt != nil
            }
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)
            // With no worker running, the event goes into the child's history.
            let sender = EddaApp(store: store, serviceName: "sender")
            #expect(try await sender.sendEvent(try CloudEvent(type: "go", source: "/test", json: 100), to: "parent-1/edda.child:1"))

            let second = try launchWorker(["child", database, executions])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            #expect(lines(of: executions) == ["before", "child work", "after"], "no recorded step ran again")
            #expect(try await store.history(of: "parent-1").map(\.stepID) == ["before:1", "edda.child:1", "edda.child:1/result", "after:1"])
            #expect(try await store.instance("parent-1")?.output?.json == "143")
            let children = try await store.instances(matching: InstanceQuery(workflowName: "child", limit: 10)).instances
            #expect(children.map(\.instanceID) == ["parent-1/edda.child:1"], "the replayed parent started no second child")
        }
    }

    @Test func killedDuringCompensationRunsEachCompensationOnce() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("saga.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["saga", database, executions])
            let store = try SQLiteStore(path: database)
            try await waitUntil(timeout: .seconds(60)) {
                (try? await store.history(of: "saga-1").filter { $0.kind == .compensationCompleted }.count) == 2
            }
            #expect(try await store.instance("saga-1")?.status == .compensating)
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)
            let recordedBefore = Set(try await store.history(of: "saga-1").filter { $0.kind == .compensationCompleted }.map(\.stepID))
            #expect(recordedBefore == ["compensate:step:4", "compensate:step:3"])

            let second = try launchWorker(["saga", database, executions])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)

            let all = lines(of: executions)
            #expect(all.filter { $0.hasPrefix("step") } == ["step 1", "step 2", "step 3", "step 4"])
            #expect(all.filter { $0 == "fail" } == ["fail"])
            let undos = all.filter { $0.hasPrefix("undo") }
            #expect(undos.filter { $0 == "undo 4" }.count == 1)
            #expect(undos.filter { $0 == "undo 3" }.count == 1)
            #expect((1...2).contains(undos.filter { $0 == "undo 2" }.count), "undo 2 may have been in flight at the kill")
            #expect(undos.filter { $0 == "undo 1" }.count == 1)
            var firstSeen: [String] = []
            for undo in undos where !firstSeen.contains(undo) { firstSeen.append(undo) }
            #expect(firstSeen == ["undo 4", "undo 3", "undo 2", "undo 1"])

            let instance = try #require(try await store.instance("saga-1"))
            #expect(instance.status == .failed)
            #expect(instance.error?.message == "payment declined")
            let compensations = try await store.history(of: "saga-1").filter { $0.kind == .compensationCompleted }.map(\.stepID)
            #expect(compensations == ["compensate:step:4", "compensate:step:3", "compensate:step:2", "compensate:step:1"])
        }
    }
}

extension CrashRecoveryTests {
    /// SIGKILL inside the step's transaction, after the user's write: neither the row nor the record
    /// survives, and the resumed worker runs the activity again.
    @Test func killedBeforeTheCommitLeavesNeitherTheUserRowNorTheRecord() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("tx.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["transaction", database, executions, "in-commit"])
            try await waitUntil(timeout: .seconds(60)) { !first.isRunning }
            #expect(first.terminationReason == .uncaughtSignal)
            #expect(first.terminationStatus == SIGKILL)
            #expect(lines(of: executions) == ["place"])
            let store = try SQLiteStore(path: database)
            #expect(try await orderCount(store) == 0)
            #expect(try await store.history(of: "tx-1").isEmpty)

            let second = try launchWorker(["transaction", database, executions, "none"])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            #expect(lines(of: executions) == ["place", "place", "confirm"], "the uncommitted step ran again")
            #expect(try await orderCount(store) == 1)
            #expect(try await store.history(of: "tx-1").map(\.stepID) == ["place:1", "confirm:1"])
            #expect(try await store.instance("tx-1")?.status == .completed)
        }
    }

    /// SIGKILL once the step's commit returned: the row and the record are both there, and the
    /// resumed worker does not run the activity again.
    @Test func killedAfterTheCommitKeepsBothAndDoesNotRunTheStepAgain() async throws {
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("tx.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            let first = try launchWorker(["transaction", database, executions, "after-commit"])
            try await waitUntil(timeout: .seconds(60)) { !first.isRunning }
            #expect(first.terminationReason == .uncaughtSignal)
            #expect(lines(of: executions) == ["place"])
            let store = try SQLiteStore(path: database)
            #expect(try await orderCount(store) == 1)
            #expect(try await store.history(of: "tx-1").map(\.stepID) == ["place:1"])

            let second = try launchWorker(["transaction", database, executions, "none"])
            try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
            #expect(second.terminationStatus == 0)
            #expect(lines(of: executions) == ["place", "confirm"], "the committed step was replayed, not run")
            #expect(try await orderCount(store) == 1)
            #expect(try await store.instance("tx-1")?.output?.json == #""confirmed 42""#)
        }
    }
}

extension CrashRecoveryTests {
    /// SIGKILL while the relay's POST is in flight: the event stays claimed (processing); the next
    /// process takes the stale claim back and delivers it again. At least once, never lost.
    @Test func relayKilledMidDeliveryDeliversAgainAfterRestart() async throws {
        let (firstArrived, arrival) = AsyncStream<Void>.makeStream()
        let (release, releaseAll) = AsyncStream<Void>.makeStream()
        let receiver = EventReceiver { _, previous in
            guard previous == 0 else { return 200 }
            arrival.yield()
            for await _ in release {}   // hold the first delivery until the worker is dead
            return 200
        }
        try await withScratchDirectory { directory in
            let database = directory.appendingPathComponent("outbox.sqlite").path
            let executions = directory.appendingPathComponent("executions.log").path
            try await receiver.serve { (endpoint: String) async throws in
                defer { releaseAll.finish() }
                let first = try launchWorker(["outbox", database, executions, endpoint])
                var arrivals = firstArrived.makeAsyncIterator()
                await arrivals.next()
                kill(first.processIdentifier, SIGKILL)
                first.waitUntilExit()
                #expect(first.terminationReason == .uncaughtSignal)
                let store = try SQLiteStore(path: database)
                #expect(try await store.outboxEvents(status: nil, limit: 10).map(\.status) == [.processing])

                let second = try launchWorker(["outbox", database, executions, endpoint])
                try await waitUntil(timeout: .seconds(60)) { !second.isRunning }
                #expect(second.terminationStatus == 0)
                let events = try await store.outboxEvents(status: nil, limit: 10)
                #expect(events.map(\.status) == [.published])
                #expect(events.first?.attempts == 1, "the killed relay never recorded its attempt")
            }
        }
        #expect(receiver.deliveries(of: "order-1-placed") == 2)
    }
}

func orderCount(_ store: SQLiteStore) async throws -> Int {
    try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM orders") ?? -1 }
}

// MARK: - Helpers

func withScratchDirectory(_ body: (URL) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-crash-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try await body(directory)
}

func workerExecutable() throws -> URL {
    let candidates = [
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug"),
    ]
    for directory in candidates {
        let url = directory.appendingPathComponent("EddaCrashWorker")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw CrashTestError(message: "EddaCrashWorker not found next to the test binary; run `swift build --build-tests` first")
}

struct CrashTestError: Error { var message: String }

/// Launches the worker; its standard error goes to `standardError` when given, else to the test's.
func launchWorker(_ arguments: [String], standardError: URL? = nil) throws -> Process {
    let process = Process()
    process.executableURL = try workerExecutable()
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    if let standardError {
        _ = FileManager.default.createFile(atPath: standardError.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: standardError)
    }
    try process.run()
    return process
}

func lines(of path: String) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").map(String.init)
}

func recordedSteps(_ store: SQLiteStore) async throws -> Set<String> {
    var steps: Set<String> = []
    for instance in try await store.instances(matching: InstanceQuery()).instances {
        for event in try await store.history(of: instance.instanceID) {
            steps.insert("\(instance.instanceID) \(event.stepID)")
        }
    }
    return steps
}

func waitUntil(timeout: Duration, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while await !condition() {
        guard ContinuousClock.now < deadline else { throw CrashTestError(message: "timed out") }
        try await Task.sleep(for: .milliseconds(5))
    }
}
