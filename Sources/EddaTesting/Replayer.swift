public import Edda
import EddaSQLite
public import Foundation
import Logging

/// Replays recorded histories against workflow code, without running any activity: the check that
/// changed code still replays the instances in flight.
///
/// Export histories with `edda export <instance-id> --output checkout-1.json` (or
/// `GET /api/instances/{id}/export`), keep them with your tests, and replay them against the code you
/// are about to deploy:
///
/// ```swift
/// @Test func checkoutReplaysRecordedHistories() async throws {
///     try await Replayer(checkout).assertReplays(historiesAt: [Bundle.module.url(forResource: "checkout-1", withExtension: "json")!])
/// }
/// ```
///
/// Each history is replayed on a scratch in-memory store: every step the code asks for must be the
/// one history recorded at that point, and gets the recorded result back; no activity body runs and
/// nothing is recorded. A step history lacks is not run either: it is a divergence when the history
/// goes on past it or the instance had finished; at the end of the history of an instance that was
/// still running, it is where the instance would go on, and the replay is clean there. Patch
/// markers are read as the engine reads them (see ``WorkflowContext/patched(_:)``).
public struct Replayer: Sendable {
    private var registrations: [@Sendable (EddaApp) throws -> Void] = []

    /// A replayer for histories of `workflow`; add others with ``registering(_:)``.
    public init<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>) {
        registrations = [{ app in try app.register(workflow) }]
    }

    /// This replayer, able to replay histories of `workflow` too.
    public func registering<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>) -> Replayer {
        var copy = self
        copy.registrations.append { app in try app.register(workflow) }
        return copy
    }

    /// Replays the export in the file at `url`.
    ///
    /// - Throws: when the file cannot be read or is not an export (``EngineError``
    ///   ``EngineError/Code-swift.struct/corruptHistory``), or no workflow given to this replayer has
    ///   the history's workflow name (``EngineError/Code-swift.struct/unknownWorkflow``). A divergence
    ///   is not thrown: it is in the report.
    public func replay(historyAt url: URL) async throws -> ReplayReport {
        try await replay(try HistoryExport(jsonData: try Data(contentsOf: url)), source: url.lastPathComponent)
    }

    /// Replays an export given as its JSON bytes.
    public func replay(_ data: Data) async throws -> ReplayReport {
        try await replay(try HistoryExport(jsonData: data), source: nil)
    }

    /// Replays an export already read.
    public func replay(_ export: HistoryExport) async throws -> ReplayReport {
        try await replay(export, source: nil)
    }

    /// Replays each file's export, one after the other.
    public func replay(historiesAt urls: [URL]) async throws -> [ReplayReport] {
        var reports: [ReplayReport] = []
        for url in urls { reports.append(try await replay(historyAt: url)) }
        return reports
    }

    /// Replays each file's export and throws the first problem: the ``NonDeterminismError`` of a
    /// divergence (naming the instance, the position, and the recorded and requested steps), or the
    /// error that stopped a replay.
    public func assertReplays(historiesAt urls: [URL]) async throws {
        for report in try await replay(historiesAt: urls) { try report.check() }
    }

    /// Replays the file's export and throws its divergence or error, if any.
    public func assertReplays(historyAt url: URL) async throws {
        try await replay(historyAt: url).check()
    }

    private func replay(_ export: HistoryExport, source: String?) async throws -> ReplayReport {
        let app = EddaApp(store: try SQLiteStore.inMemory(logger: .quiet), serviceName: "edda-replayer", configuration: .testing, logger: .quiet)
        for register in registrations { try register(app) }
        let verdict = try await app.replayOnly(export)
        var report = ReplayReport(instanceID: export.instanceID, workflowName: export.workflowName, source: source)
        switch verdict {
        case .clean: break
        case .divergence(let error): report.divergence = error
        case .failed(let error): report.error = error
        }
        return report
    }
}

/// What replaying one recorded history found.
public struct ReplayReport: Sendable, CustomStringConvertible {
    /// The instance the history was recorded by.
    public var instanceID: String
    public var workflowName: String
    /// The file it was read from, if it was.
    public var source: String?
    /// The first point where the code left the recorded path: the position, the recorded and the
    /// requested step.
    public var divergence: NonDeterminismError?
    /// What else stopped the replay: a recorded result the code cannot decode any more, a reused step ID…
    public var error: (any Error)?

    /// Whether the code replays the history without a divergence or an error.
    public var isClean: Bool { divergence == nil && error == nil }

    /// Throws ``divergence`` or ``error``, if there is one.
    public func check() throws {
        if let divergence { throw divergence }
        if let error { throw error }
    }

    public var description: String {
        let name = source.map { "\($0) (instance \(instanceID), \(workflowName))" } ?? "instance \(instanceID) (\(workflowName))"
        if let divergence { return "\(name) diverges: \(divergence.message)" }
        if let error { return "\(name) cannot be replayed: \(error)" }
        return "\(name) replays cleanly"
    }
}
