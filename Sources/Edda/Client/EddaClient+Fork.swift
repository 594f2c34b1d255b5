import Foundation

/// What ``EddaClient/fork(_:fromStep:instanceID:)`` started, and what it will run again.
public struct ForkedInstance: Sendable, Hashable {
    /// The new instance's ID.
    public var instanceID: String
    /// The instance it was forked from, which is left as it is.
    public var original: String
    /// The step the new instance runs again from.
    public var fromStep: String
    /// How many of the original's history records were copied: the ones before `fromStep`.
    public var copiedRecords: Int
    /// The steps the original recorded from `fromStep` on, which the new instance runs again with
    /// today's code (unless that code takes another path), in the order the original recorded them.
    public var rerunSteps: [String]
    /// What running them again will and will not do, for a person to read before the new instance
    /// goes far: effects of the original that stay, compensations it ran.
    public var notes: [String]
}

/// Restarting from any step: a new instance whose history is the original's up to a step.
extension EddaClient {
    /// Starts a new instance of `instanceID`'s workflow with the same input, whose history is a copy
    /// of the original's records before step `stepID`: it replays those and runs `stepID` and what
    /// follows afresh, with today's code — DBOS's `fork_workflow`, Temporal's reset. The original is
    /// not changed; the new instance records where it came from (``WorkflowInstance/forkedFrom``,
    /// ``WorkflowInstance/forkedFromStep``).
    ///
    /// ```swift
    /// let fork = try await app.fork(orderID, fromStep: "charge_card:1")
    /// print(fork.notes)   // what runs again, and what of the original stays done
    /// let receipt = try await app.handle(for: checkout, instanceID: fork.instanceID).result()
    /// ```
    ///
    /// Steps recorded from `stepID` on run again: their effects in the original — calls to other
    /// services, database writes of transactional steps, outbox events — are not undone, and
    /// ``ForkedInstance/notes`` says so, naming compensations the original ran. Activities see a new
    /// ``ActivityContext/idempotencyKey`` (it holds the instance ID), so services that deduplicate by
    /// it treat the fork's calls as new ones.
    ///
    /// - Parameters:
    ///   - instanceID: The instance to fork; any status.
    ///   - stepID: The step to run again from, as its history names it (`"charge_card:1"`).
    ///   - newInstanceID: The new instance's ID; a new UUID by default.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound``,
    ///   ``EngineError/Code-swift.struct/stepNotFound`` (listing the steps it has),
    ///   ``EngineError/Code-swift.struct/forkRefused`` (a child started before the step whose result
    ///   was not yet recorded: its report would go to the original), or
    ///   ``EngineError/Code-swift.struct/instanceAlreadyExists``. Nothing is written then.
    public func fork(_ instanceID: String, fromStep stepID: String, instanceID newInstanceID: String? = nil) async throws -> ForkedInstance {
        guard let original = try await store.instance(instanceID) else {
            throw EngineError(.instanceNotFound, "No instance \(instanceID) to fork.", instanceID: instanceID)
        }
        let history = try await store.history(of: instanceID)
        guard let cut = history.first(where: { $0.stepID == stepID && $0.kind != .retried }) else {
            let steps = history.stepIDs
            throw EngineError(
                .stepNotFound,
                "Instance \(instanceID) recorded no step '\(stepID)', so there is nothing to fork from. "
                    + (steps.isEmpty ? "It has recorded no step yet." : "Its steps: \(steps.prefix(20).joined(separator: ", "))"
                        + (steps.count > 20 ? ", …" : "") + "."),
                instanceID: instanceID, stepID: stepID
            )
        }
        let copied = history.filter { $0.sequence < cut.sequence && $0.kind != .retried }
        try Self.checkChildren(in: copied, original: instanceID, fromStep: stepID)
        if let newInstanceID { try Self.checkInstanceID(newInstanceID) }
        let id = newInstanceID ?? UUID().uuidString.lowercased()
        let new = NewInstance(
            instanceID: id, workflowName: original.workflowName, serviceName: original.serviceName, input: original.input,
            traceContext: observer.currentTraceContext(), timeouts: registry.registration(named: original.workflowName)?.timeouts ?? .none,
            // This app's version, not the original's: the fork runs today's code.
            applicationVersion: configuration.applicationVersion
        )
        switch try await store.createFork(new, of: instanceID, fromStep: stepID, before: cut.sequence) {
        case .created:
            break
        case .existing, .deduplicated:
            throw EngineError(
                .instanceAlreadyExists, "An instance \(id) exists already; fork under another ID. Nothing was written.", instanceID: id
            )
        }
        let rerun = history.filter { $0.sequence >= cut.sequence && $0.kind != .compensationCompleted && $0.kind != .compensationFailed }.stepIDs
        var notes: [String] = []
        if !rerun.isEmpty {
            notes.append(
                "\(rerun.count) step\(rerun.count == 1 ? "" : "s") recorded from \(stepID) on run again: \(rerun.prefix(10).joined(separator: ", "))"
                    + (rerun.count > 10 ? ", …" : "")
                    + ". What they did in \(instanceID) — calls to other services, database writes of transactional steps, outbox events — is not undone."
            )
        }
        let compensations = history.filter { $0.kind == .compensationCompleted || $0.kind == .compensationFailed }
        if !compensations.isEmpty {
            notes.append(
                "\(instanceID) ran \(compensations.count) compensation\(compensations.count == 1 ? "" : "s") "
                    + "(\(compensations.prefix(5).map(\.name).joined(separator: ", "))); the fork neither undoes nor repeats them, "
                    + "and runs its own if it fails."
            )
        }
        return ForkedInstance(instanceID: id, original: instanceID, fromStep: stepID, copiedRecords: copied.count, rerunSteps: rerun, notes: notes)
    }

    /// Refuses a fork that copies a child's start without the child's result: the child reports to
    /// the original, so the fork would wait for it for ever.
    private static func checkChildren(in copied: [HistoryEvent], original: String, fromStep: String) throws {
        let recorded = Set(copied.map(\.stepID))
        for start in copied where start.kind == .childStarted && !recorded.contains("\(start.stepID)/result") {
            throw EngineError(
                .forkRefused,
                "Instance \(original) started a child at step \(start.stepID) before \(fromStep) and had not recorded its result by then: "
                    + "the child reports to \(original), so a fork from \(fromStep) would wait for it for ever. Fork from \(start.stepID) "
                    + "(the child starts again) or from a step after \(start.stepID)/result. Nothing was written.",
                instanceID: original, stepID: fromStep
            )
        }
    }
}

extension [HistoryEvent] {
    /// The IDs of the steps these records hold, each once, in the order first recorded: what a fork
    /// can start from. `Retried` records (an operator's act) and patch markers (a decision, not a
    /// step) are left out.
    public var stepIDs: [String] {
        var seen: Set<String> = []
        return filter { $0.kind != .retried && $0.kind != .patchMarker && !$0.stepID.isEmpty }.map(\.stepID).filter { seen.insert($0).inserted }
    }
}
