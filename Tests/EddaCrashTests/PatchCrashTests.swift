#if canImport(Glibc)
import Glibc
#endif
@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaPostgres
@_spi(EddaStores) import EddaSQLite
import Foundation
import Testing

/// `ctx.patched` across a SIGKILL: the answer a run gave (and recorded, for `true`) is the answer
/// the next process gives.
@Suite("Patching across a crash (SIGKILL)", .serialized, .timeLimit(.minutes(3)))
struct PatchCrashTests {
    /// Runs the worker with `first`, kills it once `stallStep` has started, then runs it with
    /// `second` to the end; returns the side file's lines and the instance's history.
    /// On PostgreSQL when `schema` is given (the workers get its URL), else on a SQLite file.
    func killAndResume(
        first: [String], second: [String], stallStep: String, schema: PostgresTestSchema? = nil
    ) async throws -> (lines: [String], history: [HistoryEvent]) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-patch-crash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = schema?.url ?? directory.appendingPathComponent("patch.sqlite").path
        let executions = directory.appendingPathComponent("executions.log").path

        let worker = try launchWorker(["patch", database, executions] + first + [stallStep])
        try await waitUntil(timeout: .seconds(60)) { lines(of: executions).contains(stallStep) }
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        #expect(worker.terminationReason == .uncaughtSignal)

        let resumed = try launchWorker(["patch", database, executions] + second)
        try await waitUntil(timeout: .seconds(120)) { !resumed.isRunning }
        #expect(resumed.terminationStatus == 0)
        if let schema {
            return (lines(of: executions), try await schema.withStore { try await $0.history(of: "patch-1") })
        }
        let store = try SQLiteStore(path: database)
        return (lines(of: executions), try await store.history(of: "patch-1"))
    }

    @Test func onPostgreSQLAPatchTakenBeforeTheKillIsTakenAgainAfterIt() async throws {
        let schema = try PostgresTestSchema()
        defer { Task { try? await schema.drop() } }
        let (lines, history) = try await killAndResume(first: ["patched"], second: ["patched"], stallStep: "new_tax", schema: schema)
        #expect(lines.last == "# result new tax: 120")
        #expect(lines.filter { $0 == "price" }.count == 1)
        #expect(!lines.contains("old_tax"))
        #expect(history.map(\.stepID) == ["price:1", "edda.patch:new-tax-rule", "new_tax:1", "ship:1"])
    }

    @Test func onPostgreSQLAnInstanceKilledUnderTheOldCodeKeepsTheOldPathUnderThePatchedCode() async throws {
        let schema = try PostgresTestSchema()
        defer { Task { try? await schema.drop() } }
        let (lines, history) = try await killAndResume(first: ["old"], second: ["patched"], stallStep: "ship", schema: schema)
        #expect(lines.last == "# result old tax: 110")
        #expect(!lines.contains("new_tax"))
        #expect(history.map(\.stepID) == ["price:1", "old_tax:1", "ship:1"], "no marker on the old path")
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
