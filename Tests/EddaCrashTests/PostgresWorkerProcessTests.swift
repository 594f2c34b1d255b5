#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Several EddaCrashWorker processes on one PostgreSQL database: work spreads, each step runs once,
/// a killed, paused or disconnected worker loses nothing. Each test has its own schema.
@Suite(
    "PostgreSQL worker processes", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"] != nil, "set EDDA_POSTGRES_URL")
)
struct PostgresWorkerProcessTests {
    @Test func threeWorkersShareTheWorkAndRunEveryStepOnce() async throws {
        let (instances, steps) = (300, 10)
        try await withWorkerProcesses { workers in
            // At most 8 instances per worker: the starter creates the rest ready, for any worker to
            // claim. 5 s leases: no fault here, so no run may lose its lease to a slow scheduler.
            let launched = try ["worker-2", "worker-3", "worker-1"].map { id in
                try workers.launch(
                    id, instances: instances, steps: steps, delayMilliseconds: 1, id == "worker-1" ? "start" : "join",
                    options: ["max=8", "lease=5000"]
                )
            }
            for worker in launched { try await expectCleanExit(worker) }

            #expect(try await workers.schema.instanceCount(where: "status = 'completed' AND output = '55'") == instances)
            let executed = workers.executed
            #expect(executed.count == instances * steps)
            #expect(Set(executed.map(\.key)).count == instances * steps, "every step ran exactly once")
            #expect(Set(executed.map(\.key)) == (try await workers.schema.recordedSteps()), "the steps that ran are the steps history recorded")

            // One worker per instance, and its steps in the order of the instance's history.
            let order = (1...steps).map { "step:\($0)" }
            for (instance, runs) in Dictionary(grouping: executed, by: \.instance) {
                #expect(Set(runs.map(\.worker)).count == 1, "\(instance) ran on \(Set(runs.map(\.worker)).sorted())")
                #expect(runs.map(\.step) == order, "\(instance)")
            }
            let perWorker = Dictionary(grouping: executed, by: \.worker).mapValues(\.count)
            let shares = perWorker.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("3 PostgreSQL workers, \(instances) × \(steps) steps; steps run per worker: \(shares)")
            #expect(perWorker.count >= 2, "the work spread over the workers: \(perWorker)")
        }
    }

    @Test func killingOneOfThreeWorkersLosesNothingAndRerunsNoRecordedStep() async throws {
        let (instances, steps) = (90, 10)
        try await withWorkerProcesses { workers in
            let launch = { (id: String, role: String) in
                try workers.launch(id, instances: instances, steps: steps, delayMilliseconds: 2, role, options: ["max=8"])
            }
            let victim = try launch("worker-3", "join")
            let survivors = [try launch("worker-2", "join"), try launch("worker-1", "start")]

            // SIGKILL worker 3 once it has run a good part of its share.
            try await waitUntil(timeout: .seconds(60)) { workers.executed.filter { $0.worker == "worker-3" }.count >= 40 }
            kill(victim.processIdentifier, SIGKILL)
            let killedAt = Date()
            victim.waitUntilExit()
            #expect(victim.terminationReason == .uncaughtSignal)
            let held = try await Self.leases(held: "worker-3", in: workers.schema)
            let recordedAtKill = try await workers.schema.recordedSteps(before: killedAt)
            try #require(!held.isEmpty, "the kill must land while worker 3 holds instances")

            for worker in survivors { try await expectCleanExit(worker) }
            #expect(try await workers.schema.instanceCount(where: "status = 'completed' AND output = '55'") == instances)
            #expect(try await workers.schema.recordedSteps().count == instances * steps)
            let executed = workers.executed
            #expect(Set(executed.map(\.key)).count == instances * steps)
            expectOnlyInFlightStepsRanAgain(executed, recordedAtKill: recordedAtKill, killed: "worker-3", held: Set(held.keys))

            // The takeover waited for each lease to lapse.
            var firstTakeover: Date?
            for (instance, lease) in held {
                guard let first = try await workers.schema.firstRecordAfter(lease.lastRecord, instances: [instance]) else { continue }
                #expect(first >= lease.expiresAt, "\(instance) was taken over before its lease lapsed")
                firstTakeover = min(firstTakeover ?? first, first)
            }
            let recovery = try #require(firstTakeover).timeIntervalSince(killedAt)
            print(
                "PostgreSQL, 1 of 3 workers killed holding \(held.count) instances: first step by another worker on one of them "
                    + "\(Int(recovery * 1000)) ms after SIGKILL (lease 1 s, renewed every 250 ms, poll 100 ms)"
            )
        }
    }

    /// The seed's "How It Works": worker 1 holds instance A; worker 2 skips it and moves to the next
    /// instance; worker 1 crashes; its lease lapses; worker 3 takes A, replays it and completes it.
    @Test func theSeedsHowItWorksSequence() async throws {
        let steps = 40
        try await withWorkerProcesses { workers in
            let runs = { (instance: String) in workers.executed.filter { $0.instance == instance } }
            let launch = { (id: String, delay: Int, role: String, options: [String]) in
                try workers.launch(id, instances: 2, steps: steps, delayMilliseconds: delay, role, options: options)
            }

            // 1. A (pg-0) and B (pg-1) are created ready. Worker 1, which runs one instance at a time,
            //    acquires the lease of the oldest, A, and runs it.
            try await expectCleanExit(try launch("creator", 0, "create", []))
            let worker1 = try launch("worker-1", 100, "join", ["max=1"])
            try await waitUntil(timeout: .seconds(60)) { !runs("pg-0").isEmpty }
            #expect(try await Self.leases(held: "worker-1", in: workers.schema).keys.sorted() == ["pg-0"])

            // 2. Worker 2 joins: A is held, so it skips A and runs B, claiming every 100 ms meanwhile.
            let worker2 = try launch("worker-2", 20, "join", [])
            try await waitUntil(timeout: .seconds(60)) { runs("pg-1").count >= 10 }
            #expect(runs("pg-0").allSatisfy { $0.worker == "worker-1" }, "worker 2 skipped A while worker 1 held it")
            #expect(runs("pg-1").allSatisfy { $0.worker == "worker-2" })
            // Worker 2 leaves (SIGTERM: a graceful shutdown releases B), so that worker 3 is the one to take A.
            kill(worker2.processIdentifier, SIGTERM)
            try await expectCleanExit(worker2)
            #expect(runs("pg-0").allSatisfy { $0.worker == "worker-1" }, "worker 2 never ran A")

            // 3. Worker 1 crashes in the middle of a step of A.
            let countBeforeKill = runs("pg-0").count
            try await waitUntil(timeout: .seconds(60)) { runs("pg-0").count > countBeforeKill }
            kill(worker1.processIdentifier, SIGKILL)
            let killedAt = Date()
            worker1.waitUntilExit()
            #expect(worker1.terminationReason == .uncaughtSignal)
            let lease = try #require(try await Self.leases(held: "worker-1", in: workers.schema)["pg-0"], "nothing released A's lease")
            let recordedAtKill = try await workers.schema.recordedSteps(before: killedAt)
            let recordedOfA = recordedAtKill.filter { $0.hasPrefix("pg-0 ") }
            try #require(!recordedOfA.isEmpty && recordedOfA.count < steps, "the kill must land in the middle of A")

            // 4. The lease lapses; 5. worker 3 takes A, replays it and completes it (and B).
            try await expectCleanExit(try launch("worker-3", 2, "join", []))
            let takeover = try #require(try await workers.schema.firstRecordAfter(lease.lastRecord, instances: ["pg-0"]))
            #expect(takeover >= lease.expiresAt, "worker 3 took A only once worker 1's lease had lapsed")
            print(
                "Seed sequence: worker 3 recorded its first step of A \(Int(takeover.timeIntervalSince(killedAt) * 1000)) ms "
                    + "after worker 1's SIGKILL (lease 1 s, renewed every 250 ms, poll 100 ms)"
            )
            let total = (1...steps).reduce(0, +)
            #expect(try await workers.schema.instanceCount(where: "status = 'completed' AND output = '\(total)'") == 2)
            let ofA = runs("pg-0")
            #expect(Set(ofA.map(\.worker)) == ["worker-1", "worker-3"])
            #expect(Set(ofA.map(\.key)).count == steps)
            expectOnlyInFlightStepsRanAgain(ofA, recordedAtKill: recordedAtKill, killed: "worker-1", held: ["pg-0"])
            for step in recordedOfA {
                #expect(ofA.filter { $0.key == step }.map(\.worker) == ["worker-1"], "\(step) was replayed, not run again")
            }
        }
    }

    /// A worker paused (SIGSTOP) past its lease is a zombie: another worker takes its instance over
    /// and finishes it; resumed, the zombie finishes the step it was in, its write is refused, and
    /// history is unchanged.
    @Test func aPausedWorkersWritesAreRefusedAfterTheTakeover() async throws {
        try await withWorkerProcesses { workers in
            // Z claims the instance and runs it; W joins.
            try await expectCleanExit(try workers.launch("creator", instances: 1, steps: 6, delayMilliseconds: 0, "create"))
            let zombie = try workers.launch("worker-z", instances: 1, steps: 6, delayMilliseconds: 300, "join", options: ["trace"])
            try await waitUntil(timeout: .seconds(60)) { !workers.executed.isEmpty }
            let other = try workers.launch("worker-w", instances: 1, steps: 6, delayMilliseconds: 2, "join")

            // Stop Z at the start of step 2's body (a 300 ms sleep): it is in the middle of the step.
            try await waitUntil(timeout: .seconds(60)) { lines(of: workers.executions).contains("pg-0 step:2 worker-z") }
            kill(zombie.processIdentifier, SIGSTOP)
            try #require(markers("done", of: workers.executions) == ["pg-0 step:1 worker-z"], "Z is stopped inside step 2")

            // W takes the instance over once Z's lease (1 s) lapses, finishes it, and exits.
            try await expectCleanExit(other)
            #expect(try await workers.schema.instanceCount(where: "status = 'completed' AND output = '21'") == 1)
            let history = try await workers.schema.rows(of: "history")
            let instance = try await workers.schema.rows(of: "instances")
            #expect(history.count == 6)
            #expect(workers.executed.filter { $0.worker == "worker-w" }.map(\.step).first == "step:2", "W ran step 2 again")

            // Z resumes: step 2's body returns, its record is refused, the run ends "lease lost", Z exits.
            kill(zombie.processIdentifier, SIGCONT)
            try await expectCleanExit(zombie)
            #expect(markers("done", of: workers.executions) == ["pg-0 step:1 worker-z", "pg-0 step:2 worker-z"], "Z finished step 2 after SIGCONT")
            #expect(markers("lease-lost", of: workers.executions) == ["pg-0 worker-z"], "Z's run ended with its lease lost")
            #expect(try await workers.schema.rows(of: "history") == history, "Z wrote nothing")
            #expect(try await workers.schema.rows(of: "instances") == instance)
            #expect(workers.executed.filter { $0.worker == "worker-z" }.map(\.step) == ["step:1", "step:2"])
        }
    }

    /// Every connection of the workers' pools is cut (`pg_terminate_backend`) twice in the middle of
    /// the run: the workers reconnect, every instance completes with each step recorded once, and a
    /// step runs again only where a store failure or a lost lease cut its run (its record was not
    /// written: the at-least-once of an activity outside `ctx.transaction`).
    @Test(.bug("https://github.com/vapor/postgres-nio/pull/501", "A query sent on a connection that has just closed never returns"))
    func workersSurviveTheirConnectionsBeingTerminated() async throws {
        let (instances, steps) = (60, 10)
        let applicationName = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await withWorkerProcesses(workersApplicationName: applicationName) { workers in
            let launched = try [("worker-1", "start"), ("worker-2", "join")].map { id, role in
                try workers.launch(id, instances: instances, steps: steps, delayMilliseconds: 2, role, options: ["max=8"], logged: true)
            }
            var terminated: [Int] = []
            for third in [1, 2] {
                try await waitUntil(timeout: .seconds(60)) { workers.executed.count >= instances * steps * third / 3 }
                terminated.append(
                    try await workers.schema.values(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '\(applicationName)'", as: Bool.self
                    ).filter { $0 }.count
                )
            }
            #expect(terminated.allSatisfy { $0 >= 2 }, "connections of both workers were terminated: \(terminated)")

            // PostgresNIO (1.33.2) can lose a query written to a connection that has just closed: its
            // caller would wait forever. The store's watchdog gives such a statement up after its
            // queryTimeout (2 s in the workers) and the engine retries it: the workers must finish.
            try await waitUntil({ launched.allSatisfy { !$0.isRunning } }, stalledAfter: .seconds(15)) { lines(of: workers.executions).count }
            for worker in launched { try await expectCleanExit(worker) }
            #expect(try await workers.schema.instanceCount(where: "status = 'completed' AND output = '55'") == instances)
            let recorded = try await workers.schema.recordedSteps()
            let expected = Set((0..<instances).flatMap { i in (1...steps).map { "pg-\(i) step:\($0)" } })
            #expect(
                recorded == expected,
                "every step recorded once: missing \(expected.subtracting(recorded).sorted()), extra \(recorded.subtracting(expected).sorted())"
            )
            let counts = Dictionary(grouping: workers.executed, by: \.key).mapValues(\.count)
            #expect(counts.count == instances * steps)
            let cut = Set(
                launched.indices.flatMap { lines(of: workers.log(of: "worker-\($0 + 1)").path) }.filter { $0.contains("store failure") }
                    .compactMap { $0.split(separator: " ").first { $0.hasPrefix("edda.instance.id=") }?.dropFirst(17) }.map(String.init)
            )
            let again = counts.filter { $0.value > 1 }.keys.sorted()
            print("Connections terminated: \(terminated); instances whose run a store failure cut: \(cut.count); steps run again: \(again)")
            // A run whose renewals failed for too long stops before its lease lapses ("lease lost"):
            // the next owner runs its step in flight again, as after a store failure.
            let lost = Set(markers("lease-lost", of: workers.executions).map { String($0.split(separator: " ")[0]) })
            let logs = launched.indices.flatMap { lines(of: workers.log(of: "worker-\($0 + 1)").path) }
            for step in again {
                let instance = String(step.split(separator: " ")[0])
                #expect(
                    cut.contains(instance) || lost.contains(instance),
                    "\(step) ran again with no store failure or lost lease on its instance: \(logs.filter { $0.contains("=\(instance) ") })"
                )
            }
        }
    }

    /// The instances `owner` holds a lease on, with the lease's expiry and the instance's last record
    /// (server clock).
    static func leases(held owner: String, in schema: PostgresTestSchema) async throws -> [String: (expiresAt: Date, lastRecord: Date)] {
        let rows = try await schema.values(
            """
            SELECT w.instance_id || ' ' || w.lease_expires_at || ' ' || coalesce(max(h.recorded_at), 0)
            FROM "\(schema.name)".workflow_instances w LEFT JOIN "\(schema.name)".workflow_history h USING (instance_id)
            WHERE w.lease_owner = '\(owner)' AND w.status = 'running' GROUP BY w.instance_id, w.lease_expires_at
            """,
            as: String.self
        )
        let date = { (milliseconds: Substring) in Date(timeIntervalSince1970: Double(milliseconds)! / 1000) }
        return Dictionary(
            uniqueKeysWithValues: rows.map { row in
                let parts = row.split(separator: " ")
                return (String(parts[0]), (expiresAt: date(parts[1]), lastRecord: date(parts[2])))
            })
    }
}

/// After `killed` died: steps recorded before the kill ran exactly once; a step ran twice only if
/// it was in flight at the kill — on an instance `killed` held, first there, then on another
/// worker — at most one such step per instance.
func expectOnlyInFlightStepsRanAgain(
    _ executed: [StepExecution], recordedAtKill: Set<String>, killed: String, held: Set<String>,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var again: [String: Int] = [:]
    for (step, runs) in Dictionary(grouping: executed, by: \.key) where runs.count > 1 {
        #expect(!recordedAtKill.contains(step), "\(step) was recorded before the kill and ran again", sourceLocation: sourceLocation)
        #expect(runs.count == 2 && runs[0].worker == killed && runs[1].worker != killed, "\(step): \(runs)", sourceLocation: sourceLocation)
        #expect(held.contains(runs[0].instance), "\(step) ran again, but \(killed) did not hold it", sourceLocation: sourceLocation)
        again[runs[0].instance, default: 0] += 1
    }
    #expect(again.values.allSatisfy { $0 == 1 }, "at most the step in flight ran again: \(again)", sourceLocation: sourceLocation)
}
