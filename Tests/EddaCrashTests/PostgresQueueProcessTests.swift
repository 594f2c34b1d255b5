#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A queue's limits across EddaCrashWorker processes on one PostgreSQL database, one of them
/// SIGKILLed mid-run, judged by the store's own timestamps (the server's clock).
@Suite(
    "PostgreSQL queue limits across worker processes", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"] != nil, "set EDDA_POSTGRES_URL")
)
struct PostgresQueueProcessTests {
    @Test func threeWorkersHoldAQueuesConcurrencyAndRateLimitThroughAKill() async throws {
        // Concurrency 5, 2 per worker (so that each of the three gets a share); at most 12 admissions
        // in any 3 s. An instance runs 4 steps of 150 ms, so at first only the concurrency holds
        // admissions back, then (after 12 in the first 3 s) the rate limit does too.
        let (instances, steps, concurrency, starts, periodMilliseconds) = (24, 4, 5, 12, 3000)
        try await withWorkerProcesses { workers in
            let launch = { (id: String, role: String) in
                try workers.launch(
                    id, instances: instances, steps: steps, delayMilliseconds: 150, role,
                    options: ["queue=\(concurrency),2,\(starts),\(periodMilliseconds)", "lease=3000"]
                )
            }
            let victim = try launch("worker-3", "join")
            let survivors = [try launch("worker-2", "join"), try launch("worker-1", "start")]
            // SIGKILL worker 3 as soon as it has run a step: it then holds an instance with steps to go.
            try await waitUntil(timeout: .seconds(60)) { workers.executed.contains { $0.worker == "worker-3" } }
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()
            #expect(victim.terminationReason == .uncaughtSignal)
            for worker in survivors { try await expectCleanExit(worker) }

            #expect(try await workers.schema.instanceCount(where: "status = 'completed' AND output = '10'") == instances)
            #expect(try await workers.schema.recordedSteps().count == instances * steps)
            #expect(Set(workers.executed.map(\.key)).count == instances * steps)

            // Each instance held its place from its admission to its finish (both on the server's clock).
            let spans = try await workers.schema.values(
                "SELECT admitted_at || ' ' || updated_at FROM \"\(workers.schema.name)\".workflow_instances", as: String.self
            ).map { $0.split(separator: " ").compactMap { Int64($0) } }
            try #require(spans.count == instances && spans.allSatisfy { $0.count == 2 }, "every instance was admitted and finished")
            // The most held at any instant: a finish and an admission in the same millisecond do not overlap.
            let admissions: [(at: Int64, change: Int)] = spans.map { (at: $0[0], change: 1) }
            let finishes: [(at: Int64, change: Int)] = spans.map { (at: $0[1], change: -1) }
            let edges = (admissions + finishes).sorted { ($0.at, $0.change) < ($1.at, $1.change) }
            var (held, most) = (0, 0)
            for edge in edges {
                held += edge.change
                most = max(most, held)
            }
            #expect(most <= concurrency, "\(most) instances of the queue ran at once")
            // The test presses on both limits; under a loaded machine the last place may stay free a moment.
            #expect(most >= concurrency - 1, "the queue's concurrency was pressed on: at most \(most) ran at once")

            // No span of one period holds more than `starts` admissions.
            let admitted = spans.map { $0[0] }.sorted()
            var fullest = 0
            for (index, first) in admitted.enumerated() {
                let within = admitted[index...].prefix { $0 < first + Int64(periodMilliseconds) }.count
                fullest = max(fullest, within)
            }
            #expect(fullest <= starts, "\(fullest) admissions within one \(periodMilliseconds) ms period")
            #expect(fullest >= starts - 2, "the rate limit was pressed on: at most \(fullest) admissions in one period")
            print(
                "PostgreSQL queue across 3 worker processes (one SIGKILLed): at most \(most) running of \(concurrency), "
                    + "at most \(fullest) admissions per \(periodMilliseconds) ms of \(starts)"
            )
        }
    }
}
