#if canImport(Glibc)
import Glibc
#endif
import Edda
import EddaSQLite
import Foundation
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
        let arguments = [database, executions, "\(Self.instances)", "\(Self.steps)", "20"]

        // 1. Start a worker and kill it once a good part of the steps ran.
        let first = try launchWorker(arguments)
        try await waitUntil(timeout: .seconds(60)) { lines(of: executions).count >= Self.instances * Self.steps / 2 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(first.terminationReason == .uncaughtSignal)
        #expect(first.terminationStatus == SIGKILL)

        let store = try SQLiteStore(path: database)
        let recordedBeforeRestart = try await recordedSteps(store)
        let executedBeforeRestart = lines(of: executions)
        #expect(!recordedBeforeRestart.isEmpty)
        #expect(recordedBeforeRestart.count < Self.instances * Self.steps, "the kill must land before everything finished")
        #expect(try await store.instances(matching: InstanceQuery(status: .running)).count > 0)

        // 2. A new process on the same file finishes the work.
        let second = try launchWorker(arguments)
        try await waitUntil(timeout: .seconds(120)) { !second.isRunning }
        #expect(second.terminationReason == .exit)
        #expect(second.terminationStatus == 0)

        // 3. Every instance completed, with every step recorded once.
        let instances = try await store.instances(matching: InstanceQuery())
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

        let worker = try launchWorker([database, executions, "1", "200", "50"])
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

// MARK: - Helpers

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

func launchWorker(_ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = try workerExecutable()
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    return process
}

func lines(of path: String) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").map(String.init)
}

func recordedSteps(_ store: SQLiteStore) async throws -> Set<String> {
    var steps: Set<String> = []
    for instance in try await store.instances(matching: InstanceQuery()) {
        for event in try await store.history(of: instance.instanceID) {
            steps.insert("\(instance.instanceID) \(event.stepID)")
        }
    }
    return steps
}

func waitUntil(timeout: Duration, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw CrashTestError(message: "timed out") }
        try await Task.sleep(for: .milliseconds(5))
    }
}
