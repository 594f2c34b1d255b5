#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Two worker processes on one PostgreSQL database; one is killed with SIGKILL in the middle of its
/// instances, and the other takes them over once their leases lapse.
@Suite(
    "Takeover after SIGKILL (PostgreSQL)", .serialized, .timeLimit(.minutes(2)),
    .enabled(if: ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"] != nil, "set EDDA_POSTGRES_URL")
)
struct PostgresTakeoverTests {
    static let instances = 4
    static let steps = 8

    @Test func aKilledWorkersInstancesResumeOnTheOtherWorkerAfterTheLease() async throws {
        try await withWorkerProcesses { workers in
            let executions = workers.executions
            let half = Self.instances * Self.steps / 2
            let launch = { (id: String, role: String, options: [String]) in
                try workers.launch(id, instances: Self.instances, steps: Self.steps, delayMilliseconds: 100, role, options: options)
            }

            // 1. Worker A starts the instances (leased to itself); worker B joins with nothing to claim.
            //    A's steps stall once half are done, so the kill below lands mid-run on any machine.
            let workerA = try launch("worker-a", "start", ["stall=\(half)"])
            try await waitUntil(timeout: .seconds(60)) { lines(of: executions).count >= Self.instances }
            let workerB = try launch("worker-b", "join", [])
            try await waitUntil(timeout: .seconds(60)) { lines(of: executions).count >= half }

            // 2. Kill A mid-step.
            kill(workerA.processIdentifier, SIGKILL)
            let killedAt = Date()
            workerA.waitUntilExit()
            #expect(workerA.terminationReason == .uncaughtSignal)
            let executedByAAtKill = lines(of: executions).filter { $0.hasSuffix("worker-a") }
            #expect(lines(of: executions).allSatisfy { $0.hasSuffix("worker-a") }, "B ran nothing while A held the leases")

            // 3. B takes over once the leases lapse, and finishes everything.
            try await waitUntil(timeout: .seconds(60)) { !workerB.isRunning }
            #expect(workerB.terminationStatus == 0)
            let all = lines(of: executions)
            let firstByB = try #require(try await workers.schema.firstRecordAfter(killedAt))
            let recovery = firstByB.timeIntervalSince(killedAt)
            print(
                "PostgreSQL takeover: first step by the other worker \(Int(recovery * 1000)) ms after SIGKILL "
                    + "(lease 1 s, renewed every 250 ms, poll 100 ms)"
            )
            #expect(recovery < 3, "took \(recovery) s; leases are 1 s")
            #expect(recovery > 0)

            // 4. Every step recorded once; steps A recorded before the kill never ran again; at most the
            //    step in flight at the kill (one per instance) ran twice.
            var runs: [String: [String]] = [:]
            for line in all {
                let parts = line.split(separator: " ")
                runs["\(parts[0]) \(parts[1])", default: []].append(String(parts[2]))
            }
            #expect(runs.count == Self.instances * Self.steps)
            #expect(runs.values.filter { $0.count > 1 }.count <= Self.instances)
            #expect(runs.values.allSatisfy { $0.count <= 2 })
            #expect(runs.values.contains { $0.contains("worker-b") }, "B ran the rest")
            #expect(executedByAAtKill.count < Self.instances * Self.steps, "the kill landed before A finished")
        }
    }
}
