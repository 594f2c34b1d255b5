#if canImport(Glibc)
import Glibc
#endif
@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import Foundation
import Testing

/// `ctx.patched` across a SIGKILL: the answer a run gave (and recorded, for `true`) is the answer
/// the next process gives.
@Suite("Patching across a crash (SIGKILL)", .serialized, .timeLimit(.minutes(3)))
struct PatchCrashTests {
    /// Runs the worker with `first`, kills it once `stallStep` has started, then runs it with
    /// `second` to the end; returns the side file's lines and the instance's history.
    func killAndResume(first: [String], second: [String], stallStep: String) async throws -> (lines: [String], history: [HistoryEvent]) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-patch-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("patch.sqlite").path
        let executions = directory.appendingPathComponent("executions.log").path

        let worker = try launchWorker(["patch", database, executions] + first + [stallStep])
        try await waitUntil(timeout: .seconds(60)) { lines(of: executions).contains(stallStep) }
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        #expect(worker.terminationReason == .uncaughtSignal)

        let resumed = try launchWorker(["patch", database, executions] + second)
        try await waitUntil(timeout: .seconds(120)) { !resumed.isRunning }
        #expect(resumed.terminationStatus == 0)
        let store = try SQLiteStore(path: database)
        return (lines(of: executions), try await store.history(of: "patch-1"))
    }

    @Test func anInstanceKilledUnderTheOldCodeKeepsTheOldPathUnderThePatchedCode() async throws {
        let (lines, history) = try await killAndResume(first: ["old"], second: ["patched"], stallStep: "ship")
        #expect(lines.last == "# result old tax: 110")
        #expect(lines.filter { $0 == "price" }.count == 1 && lines.filter { $0 == "old_tax" }.count == 1)
        #expect(!lines.contains("new_tax"))
        #expect(history.map(\.stepID) == ["price:1", "old_tax:1", "ship:1"], "no marker on the old path")
    }

    @Test func aPatchTakenBeforeTheKillIsTakenAgainAfterIt() async throws {
        // Killed inside new_tax: the marker is recorded, new_tax is not.
        let (lines, history) = try await killAndResume(first: ["patched"], second: ["patched"], stallStep: "new_tax")
        #expect(lines.last == "# result new tax: 120")
        #expect(lines.filter { $0 == "price" }.count == 1)
        #expect(lines.filter { $0 == "new_tax" }.count == 2, "the step in flight at the kill runs again")
        #expect(!lines.contains("old_tax"))
        #expect(history.map(\.stepID) == ["price:1", "edda.patch:new-tax-rule", "new_tax:1", "ship:1"])
        #expect(history.map(\.position) == [1, 2, 3, 4])
    }

    @Test func anInstanceKilledBeforeThePatchedPointTakesThePatchWhenItResumes() async throws {
        // Killed inside old_tax under the old code: its history ends with price, before the patch's point.
        let (lines, history) = try await killAndResume(first: ["old"], second: ["patched"], stallStep: "old_tax")
        #expect(lines.last == "# result new tax: 120", "past the end of its history the run is fresh and takes the patch")
        #expect(lines.filter { $0 == "price" }.count == 1)
        #expect(history.map(\.stepID) == ["price:1", "edda.patch:new-tax-rule", "new_tax:1", "ship:1"])
    }
}
