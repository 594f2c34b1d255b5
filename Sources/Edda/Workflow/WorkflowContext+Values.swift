public import Foundation

/// Values a workflow must not compute itself: the time, identifiers, random numbers. Each is a
/// step of its own: computed and recorded on the first run, read back from history on every replay.
///
/// ```swift
/// let trial = Workflow("start_trial") { (ctx, user: String) -> Trial in
///     let started = try await ctx.now()                  // not Date(): a replay would get another time
///     let code = try await ctx.uuid()
///     let reviewer = try await ctx.random(in: 0..<reviewers.count)
///     return try await createTrial(ctx, user, started.addingTimeInterval(14 * 86_400), code, reviewers[reviewer])
/// }
/// ```
///
/// Code that reads `Date()`, `UUID()` or a random generator directly in a workflow body gets a new
/// value on each replay and takes another branch than the recorded run — the commonest source of
/// non-determinism. An activity may use them freely: its result is what is recorded.
///
/// Each call costs one append to the store (a round trip), like a step. Call them from the
/// workflow's top-level code, in a fixed order: their step IDs (`edda.now:1`, `edda.uuid:1`, …)
/// count calls, as activities' do.
extension WorkflowContext {
    /// The current time on the app's clock, recorded on the first run and returned unchanged on
    /// every replay.
    ///
    /// - Throws: ``NonDeterminismError`` when history recorded another step here; a ``StoreError``
    ///   when the value could not be recorded (the run stops and resumes later).
    public func now() async throws -> Date {
        try await recorded("edda.now") { environment.clock.now() }
    }

    /// A random UUID, recorded on the first run and returned unchanged on every replay.
    public func uuid() async throws -> UUID {
        try await recorded("edda.uuid") { UUID() }
    }

    /// A random integer in `range`, recorded on the first run and returned unchanged on every replay.
    public func random(in range: Range<Int>) async throws -> Int {
        try await recorded("edda.random") { Int.random(in: range) }
    }

    /// A random integer in `range`, recorded on the first run and returned unchanged on every replay.
    public func random(in range: ClosedRange<Int>) async throws -> Int {
        try await recorded("edda.random") { Int.random(in: range) }
    }

    /// A random number in `range`, recorded on the first run and returned unchanged on every replay.
    public func random(in range: Range<Double>) async throws -> Double {
        try await recorded("edda.random") { Double.random(in: range) }
    }

    /// Returns the value recorded for this step, or makes one, records it and returns it.
    func recorded<Value: Codable & Sendable>(_ name: String, _ make: () -> Value) async throws -> Value {
        let reservation = try reserveStep(name: name, explicitID: nil)
        if let event = try recordedStep(reservation, kind: .valueRecorded) {
            return try decodeRecorded(event, as: Value.self)
        }
        let value = make()
        try await appendRecord(reservation, kind: .valueRecorded, payload: try JSONPayload.encode(value))
        return value
    }

    /// The record history holds for a reserved step of the engine's own (a value, a timer), or `nil`
    /// for a fresh one. A record of another kind under that ID fails the run as non-deterministic.
    func recordedStep(_ reservation: ReplayState.Reservation, kind: HistoryEventKind) throws -> HistoryEvent? {
        guard case .replay(let event) = reservation.decision else { return nil }
        guard event.kind == kind else {
            let failure = NonDeterminismError(
                instanceID: instanceID, position: reservation.position, recordedStepID: event.stepID,
                recordedName: "\(event.name) (\(event.kind))", requestedStepID: reservation.stepID, requestedName: reservation.name
            )
            fail(with: failure)
            throw failure
        }
        return event
    }

    /// Appends the record of a reserved step, fenced by the run's lease. If it cannot be written,
    /// the run stops without an outcome and the step is asked for again on the next run.
    func appendRecord(_ reservation: ReplayState.Reservation, kind: HistoryEventKind, payload: JSONPayload) async throws {
        let record = HistoryEvent(
            instanceID: instanceID, stepID: reservation.stepID, position: reservation.position, name: reservation.name,
            kind: kind, payload: payload
        )
        try await write { store in try await store.append(record, lease: lease) }
    }
}
