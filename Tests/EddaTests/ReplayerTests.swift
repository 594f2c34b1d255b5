@_spi(EddaStores) import Edda
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `Replayer`: real histories, exported to files, replayed against changed code without running an activity.
@Suite("Replayer", .timeLimit(.minutes(1)))
struct ReplayerTests {
    /// The checkout workflow's versions (before the patch, patched, deprecated, removed), and their activity log.
    let versions = PatchingTests()

    /// Records two instances of `workflow`: "done" (finished) and "open" (waiting for its approval),
    /// and exports each to a file in `directory`.
    func record(_ workflow: Workflow<String, String>, in directory: URL) async throws -> (done: URL, open: URL) {
        let store = try SQLiteStore.inMemory()
        try await versions.startAndLeaveWaiting(workflow, "done", on: store)
        _ = try await versions.approveAndFinish(workflow, "done", on: store)
        try await versions.startAndLeaveWaiting(workflow, "open", on: store)
        var files: [URL] = []
        for id in ["done", "open"] {
            let file = directory.appendingPathComponent("\(workflow.name)-\(id).json")
            try #require(try await store.export(id)).jsonData().write(to: file)
            files.append(file)
        }
        return (files[0], files[1])
    }

    func withDirectory(_ body: (URL) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-replayer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body(directory)
    }

    @Test func theRecordingCodeReplaysItsHistoriesWithoutRunningAnActivity() async throws {
        try await withDirectory { directory in
            let (done, open) = try await record(versions.version1(), in: directory)
            let executed = versions.log.all.count
            let reports = try await Replayer(versions.version1()).replay(historiesAt: [done, open])
            #expect(reports.map(\.isClean) == [true, true], "\(reports)")
            #expect(reports.map(\.description) == [
                "checkout-done.json (instance done, checkout) replays cleanly", "checkout-open.json (instance open, checkout) replays cleanly",
            ])
            #expect(versions.log.all.count == executed, "no activity ran: \(versions.log.all.dropFirst(executed))")
        }
    }

    @Test func aChangeWithoutAPatchIsCaughtWithThePositionAndBothSteps() async throws {
        try await withDirectory { directory in
            let (done, open) = try await record(versions.version1(), in: directory)
            // The tax rule changed in place: the old instances would now run new_tax where they ran old_tax.
            let changed = Replayer(versions.version3(deprecating: false))
            for file in [done, open] {
                let report = try await changed.replay(historyAt: file)
                let divergence = try #require(report.divergence, "\(report)")
                #expect(divergence.position == 2 && divergence.recordedName == "old_tax" && divergence.requestedName == "new_tax")
                #expect(report.description.contains("diverges") && report.description.contains("'old_tax'"))
            }
            let error = try await #require(throws: NonDeterminismError.self) { try await changed.assertReplays(historyAt: open) }
            #expect(error.instanceID == "open" && error.recordedStepID == "old_tax:1" && error.requestedStepID == "new_tax:1")
        }
    }

    @Test func thePatchedCodeReplaysOldAndNewHistoriesAndTheDeprecationReplaysTheNew() async throws {
        try await withDirectory { directory in
            let old = try await record(versions.version1(), in: directory)
            try await Replayer(versions.version2()).assertReplays(historiesAt: [old.done, old.open])

            let patchedDirectory = directory.appendingPathComponent("patched")
            try FileManager.default.createDirectory(at: patchedDirectory, withIntermediateDirectories: true)
            let new = try await record(versions.version2(), in: patchedDirectory)
            try await Replayer(versions.version2()).assertReplays(historiesAt: [new.done, new.open])
            try await Replayer(versions.version3()).assertReplays(historiesAt: [new.done, new.open])
            try await Replayer(versions.version3(deprecating: false)).assertReplays(historiesAt: [new.done, new.open])
            // Deprecated too early: old-path instances are still running.
            let early = try await Replayer(versions.version3()).replay(historyAt: old.open)
            #expect(early.divergence?.recordedName == "old_tax", "\(early)")
            // Taken back: the marker is skipped, but the recorded new_tax is not what the old code asks for.
            let reverted = try await Replayer(versions.version1()).replay(historyAt: new.done)
            #expect(reverted.divergence?.position == 3 && reverted.divergence?.requestedName == "old_tax", "\(reverted)")
        }
    }

    @Test func aStepBeyondTheHistoryIsADivergenceOnlyWhereTheHistoryGoesOnOrEnded() async throws {
        let log = versions.log
        let audit = Activity("audit") { (ctx, total: Int) -> Int in log.record("audit"); return total }
        let (version1, price, oldTax, ship) = (versions.version1(), versions.price, versions.oldTax, versions.ship)
        // A step added at the end: the open instance has not got there yet; the finished one ended without it.
        let audited = Workflow("checkout") { (ctx, order: String) -> String in
            let total = try await price(ctx, order) + oldTax(ctx, 100)
            _ = try await ctx.waitForEvent(type: "approved", as: String.self, eventID: "approval")
            let shipped = try await ship(ctx, total)
            _ = try await audit(ctx, total)
            return shipped
        }
        try await withDirectory { directory in
            let (done, open) = try await record(version1, in: directory)
            let executed = log.all.count
            let replayer = Replayer(audited)
            #expect(try await replayer.replay(historyAt: open).isClean)
            let finished = try await replayer.replay(historyAt: done)
            #expect(finished.divergence?.requestedName == "audit" && finished.divergence?.recordedName == nil, "\(finished)")
            #expect(finished.divergence?.message.contains("does not hold") == true)
            #expect(log.all.count == executed, "the step history lacks did not run")
        }
    }

    @Test func aRemovedStepAndAnUnknownWorkflowAreReported() async throws {
        let price = versions.price
        let shorter = Workflow("checkout") { (ctx, order: String) -> String in "\(try await price(ctx, order))" }
        try await withDirectory { directory in
            let (done, _) = try await record(versions.version1(), in: directory)
            let removed = try await Replayer(shorter).replay(historyAt: done)
            #expect(removed.divergence?.recordedName == "old_tax" && removed.divergence?.requestedName == nil, "\(removed)")

            let other = Workflow("refund") { (ctx, order: String) -> String in order }
            let unknown = try await #require(throws: EngineError.self) { try await Replayer(other).replay(historyAt: done) }
            #expect(unknown.code == .unknownWorkflow && unknown.message.contains("'checkout'"))
            #expect(try await Replayer(other).registering(versions.version1()).replay(historyAt: done).isClean)
        }
    }
}
