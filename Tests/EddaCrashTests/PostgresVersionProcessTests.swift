import Foundation
import Testing

/// Application versions across EddaCrashWorker processes on one PostgreSQL schema: each worker
/// claims only its own version's instances.
@Suite(
    "PostgreSQL application versions across worker processes", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"] != nil, "set EDDA_POSTGRES_URL")
)
struct PostgresVersionProcessTests {
    @Test func eachVersionsWorkerRunsOnlyItsOwnInstancesAndAnIdleWorkerOfAnotherVersionLeavesThemAlone() async throws {
        let (instances, steps) = (4, 3)
        try await withWorkerProcesses { workers in
            // Both versions' instances are created ready, version a's first (the oldest).
            for version in ["a", "b"] {
                let creator = try workers.launch(
                    "creator-\(version)", instances: instances, steps: steps, delayMilliseconds: 20, "create", options: ["version=\(version)"]
                )
                try await expectCleanExit(creator)
            }
            #expect(try await workers.schema.instanceCount(where: "app_version = 'a' AND status = 'running'") == instances)
            #expect(try await workers.schema.instanceCount(where: "app_version = 'b' AND status = 'running'") == instances)

            // B's worker runs its four, then stays a while idle, polling: a's instances stay untouched.
            let workerB = try workers.launch(
                "worker-b", instances: instances, steps: steps, delayMilliseconds: 20, "join", options: ["version=b", "linger=1500"]
            )
            try await expectCleanExit(workerB)
            #expect(try await workers.schema.instanceCount(where: "app_version = 'b' AND status = 'completed'") == instances)
            #expect(try await workers.schema.instanceCount(where: "app_version = 'a' AND status = 'running' AND lease_owner IS NULL") == instances)
            #expect(workers.executed.allSatisfy { $0.worker == "worker-b" && $0.instance.hasPrefix("pg-b-") }, "\(workers.executed)")

            // A's worker finishes a's, alongside a second b worker that finds nothing to do.
            let idleB = try workers.launch(
                "worker-b2", instances: instances, steps: steps, delayMilliseconds: 20, "join", options: ["version=b", "linger=1000"]
            )
            let workerA = try workers.launch("worker-a", instances: instances, steps: steps, delayMilliseconds: 20, "join", options: ["version=a"])
            try await expectCleanExit(workerA)
            try await expectCleanExit(idleB)
            #expect(try await workers.schema.instanceCount(where: "app_version = 'a' AND status = 'completed'") == instances)
            let executed = workers.executed
            #expect(executed.count == 2 * instances * steps, "each step ran once")
            #expect(executed.filter { $0.instance.hasPrefix("pg-a-") }.allSatisfy { $0.worker == "worker-a" })
            #expect(executed.filter { $0.instance.hasPrefix("pg-b-") }.allSatisfy { $0.worker == "worker-b" })
        }
    }
}
