package import Foundation

/// Step-ID assignment and the determinism check for one run of one workflow instance.
///
/// A pure value: it reads the recorded history once, then answers each step request with "replay
/// this record" or "execute fresh", or throws when the code diverges from history. No I/O, so it
/// is tested on its own.
///
/// The rules:
/// - A step's ID is the caller's `activityID:` or `name:N`, N counting that name's calls.
///   The same ID twice in one run is an error.
/// - A recorded ID must be requested under its recorded name.
/// - Steps requested by the workflow's top-level task get a position (1, 2, …). A position that
///   history recorded must be requested with the recorded step ID and name: this catches inserted,
///   removed, renamed and reordered steps before any fresh step runs. Steps requested from child
///   tasks (`async let`, task groups) are matched by ID only, because their request order races;
///   reserve them from the top-level task (``Activity/prepare(_:_:activityID:)``) to give them positions.
/// - When the workflow returns, every recorded step must have been requested.
/// - Patch markers (``HistoryEventKind/patchMarker``) record decisions, not steps: a top-level request
///   at a marker's position skips past it, so a marker whose `patched` call was removed is no
///   divergence. ``patch(_:topLevel:)`` answers `patched` from them.
package struct ReplayState: Sendable {
    package enum Decision: Sendable {
        /// History has the step: return its record, do not run the body.
        case replay(HistoryEvent)
        /// History lacks the step: run it and record the outcome.
        case execute
    }

    package struct Reservation: Sendable {
        package var stepID: String
        package var name: String
        package var position: Int?
        /// 1-based count of steps requested in this run, this one included.
        package var stepNumber: Int
        package var decision: Decision
        /// Failed attempts an earlier run recorded for this step, if it is to execute.
        package var priorAttempts: PriorAttempts?
    }

    /// What earlier runs recorded about a step's failed attempts.
    package struct PriorAttempts: Sendable, Equatable {
        /// Attempts already made.
        package var attempts: Int
        package var firstAttemptAt: Date
        package var nextAttemptAt: Date
        package var errors: [ErrorRecord]
    }

    /// How ``WorkflowContext/patched(_:)`` is answered.
    package enum PatchDecision: Sendable, Equatable {
        /// History decides: return this, record nothing.
        case decided(Bool)
        /// The run is past the end of its recorded top-level history: it takes the patched branch, and
        /// records a marker with this step ID at this position so that every later run does too.
        case recordMarker(stepID: String, position: Int)
    }

    /// The prefix of patch markers' step IDs: `edda.patch:<patch ID>`.
    package static let patchPrefix = "edda.patch:"

    package let instanceID: String
    /// Patch markers in history, by patch ID.
    private var markers: [String: HistoryEvent] = [:]
    /// What this run answered for each patch ID: asked again, a patch gives the same answer.
    private var patchDecisions: [String: Bool] = [:]
    private var recordedByID: [String: HistoryEvent] = [:]
    private var lastAttempt: [String: HistoryEvent] = [:]
    private var compensations: [String: HistoryEvent] = [:]
    private var recordedByPosition: [Int: HistoryEvent] = [:]
    private var unconsumed: Set<String> = []
    private var callCounts: [String: Int] = [:]
    private var requestedIDs: Set<String> = []
    private var nextPosition = 1
    private(set) package var stepCount = 0

    package init(instanceID: String, history: [HistoryEvent]) {
        self.instanceID = instanceID
        for event in history {
            switch event.kind {
            case .activityCompleted, .activityFailed, .valueRecorded, .timerScheduled, .messageReceived, .waitTimedOut, .messagePublished, .childStarted:
                recordedByID[event.stepID] = event
                if let position = event.position {
                    recordedByPosition[position] = event
                }
                unconsumed.insert(event.stepID)
            case .attemptFailed:
                lastAttempt[event.stepID] = event
            case .compensationCompleted, .compensationFailed:
                compensations[event.stepID] = event
            case .patchMarker:
                // Not a step: never "unconsumed", so a marker whose patch call is gone is no divergence.
                markers[String(event.stepID.dropFirst(Self.patchPrefix.count))] = event
                if let position = event.position {
                    recordedByPosition[position] = event
                }
            default:
                break
            }
        }
    }

    /// The recorded outcome of a compensation step, if it ran.
    package func compensationOutcome(_ stepID: String) -> HistoryEvent? {
        compensations[stepID]
    }

    /// The failed attempts recorded for a step that has no outcome yet.
    package func priorAttempts(for stepID: String) throws -> PriorAttempts? {
        guard let event = lastAttempt[stepID] else { return nil }
        let record: AttemptRecord
        do {
            guard let payload = event.payload else {
                throw DecodingError.valueNotFound(AttemptRecord.self, .init(codingPath: [], debugDescription: "No attempt payload"))
            }
            record = try payload.decode(AttemptRecord.self)
        } catch {
            throw EngineError(
                .corruptHistory,
                "The failed-attempt record of step '\(stepID)' of instance \(instanceID) cannot be read. The history was left as it is.",
                instanceID: instanceID, stepID: stepID, cause: error
            )
        }
        return PriorAttempts(
            attempts: record.attempt,
            firstAttemptAt: Date(timeIntervalSince1970: Double(record.firstAttemptAtMilliseconds) / 1000),
            nextAttemptAt: Date(timeIntervalSince1970: Double(record.nextAttemptAtMilliseconds) / 1000),
            errors: event.retry?.errors ?? event.error.map { [$0] } ?? []
        )
    }

    /// Whether history holds a top-level step after `position`: the code went past that point in an
    /// earlier run.
    package func hasRecordedStep(afterPosition position: Int) -> Bool {
        recordedByPosition.keys.contains { $0 > position }
    }

    /// True while recorded steps remain that this run has not requested yet.
    package var isReplaying: Bool { !unconsumed.isEmpty }

    /// The step ID the next call of `name` gets, without reserving it.
    package func nextDefaultID(for name: String) -> String {
        "\(name):\(callCounts[name, default: 0] + 1)"
    }

    /// The prefix of compensations' step IDs: `compensate:<step ID>`.
    package static let compensationPrefix = "compensate:"

    /// Reserves the next step.
    ///
    /// - Parameter topLevel: whether the request comes from the workflow's top-level task, whose
    ///   request order is deterministic.
    package mutating func reserve(name: String, explicitID: String?, topLevel: Bool) throws -> Reservation {
        let stepID: String
        if let explicitID {
            guard !explicitID.hasPrefix(Self.compensationPrefix) else {
                throw EngineError(
                    .reservedStepID,
                    "Step ID '\(explicitID)' starts with '\(Self.compensationPrefix)', which Edda keeps for compensations' records; "
                        + "choose another activityID:.",
                    instanceID: instanceID, stepID: explicitID
                )
            }
            stepID = explicitID
        } else {
            stepID = nextDefaultID(for: name)
            callCounts[name, default: 0] += 1
        }
        guard requestedIDs.insert(stepID).inserted else {
            throw EngineError(
                .duplicateStepID,
                "Step ID '\(stepID)' was used twice in one run of instance \(instanceID). Give each call a distinct "
                    + "activityID: (in a loop, include the index or the item's ID: \"\(name):\\(i)\").",
                instanceID: instanceID, stepID: stepID
            )
        }
        stepCount += 1
        let position: Int?
        if topLevel {
            skipMarkers()
            position = nextPosition
            nextPosition += 1
        } else {
            position = nil
        }

        if let position, let atPosition = recordedByPosition[position], atPosition.stepID != stepID || atPosition.name != name {
            throw NonDeterminismError(
                instanceID: instanceID, position: position,
                recordedStepID: atPosition.stepID, recordedName: atPosition.name,
                requestedStepID: stepID, requestedName: name
            )
        }
        guard let recorded = recordedByID[stepID] else {
            return Reservation(
                stepID: stepID, name: name, position: position, stepNumber: stepCount, decision: .execute,
                priorAttempts: try priorAttempts(for: stepID)
            )
        }
        if recorded.name != name || (position != nil && recorded.position != nil && recorded.position != position) {
            throw NonDeterminismError(
                instanceID: instanceID, position: position ?? recorded.position,
                recordedStepID: recorded.stepID, recordedName: recorded.name,
                requestedStepID: stepID, requestedName: name
            )
        }
        unconsumed.remove(stepID)
        return Reservation(stepID: stepID, name: name, position: position, stepNumber: stepCount, decision: .replay(recorded), priorAttempts: nil)
    }

    /// Answers ``WorkflowContext/patched(_:)``: `true` when history holds the patch's marker, `false`
    /// when it holds a top-level step at or after this point (the instance ran before the patch
    /// existed, and took the old path here), and otherwise — a fresh run, or a replay that reached the
    /// end of its recorded history — `true`, with a marker to record at the next position. The same
    /// patch asked again in one run gets the same answer.
    ///
    /// - Throws: ``EngineError`` ``EngineError/Code-swift.struct/concurrentPatch`` from a concurrent task.
    package mutating func patch(_ patchID: String, topLevel: Bool) throws -> PatchDecision {
        if let decided = patchDecisions[patchID] { return .decided(decided) }
        guard topLevel else {
            throw EngineError(
                .concurrentPatch,
                "ctx.patched(\"\(patchID)\") of instance \(instanceID) was called from a concurrent task (async let or a task group). "
                    + "Whether a run is past its recorded history is only known in the workflow's own code: call patched there, "
                    + "before starting the tasks, and pass the result in.",
                instanceID: instanceID, stepID: Self.patchPrefix + patchID
            )
        }
        if markers[patchID] != nil {
            patchDecisions[patchID] = true
            return .decided(true)
        }
        skipMarkers()
        if hasRecordedStep(afterPosition: nextPosition - 1) {
            patchDecisions[patchID] = false
            return .decided(false)
        }
        patchDecisions[patchID] = true
        defer { nextPosition += 1 }
        return .recordMarker(stepID: Self.patchPrefix + patchID, position: nextPosition)
    }

    /// Answers ``WorkflowContext/deprecatePatch(_:)``: skips the patch's marker if history has one here.
    /// Nothing is recorded either way.
    ///
    /// - Throws: ``EngineError`` ``EngineError/Code-swift.struct/concurrentPatch`` from a concurrent task.
    package mutating func deprecatePatch(_ patchID: String, topLevel: Bool) throws {
        guard topLevel else {
            throw EngineError(
                .concurrentPatch,
                "ctx.deprecatePatch(\"\(patchID)\") of instance \(instanceID) was called from a concurrent task (async let or a task group). "
                    + "Call it where patched was called: in the workflow's own code.",
                instanceID: instanceID, stepID: Self.patchPrefix + patchID
            )
        }
        skipMarkers()
    }

    /// Moves past the patch markers at the next position: they record decisions, not steps.
    private mutating func skipMarkers() {
        while recordedByPosition[nextPosition]?.kind == .patchMarker { nextPosition += 1 }
    }

    /// Checks, when the workflow has returned, that it requested every recorded step.
    package func verifyAllConsumed() throws {
        guard !unconsumed.isEmpty else { return }
        let missing = unconsumed.compactMap { recordedByID[$0] }.min { $0.sequence < $1.sequence }!
        throw NonDeterminismError(
            instanceID: instanceID, position: missing.position,
            recordedStepID: missing.stepID, recordedName: missing.name,
            requestedStepID: nil, requestedName: nil
        )
    }
}
