public import Foundation

/// Durable timers: a workflow waits minutes or weeks, and a crash changes nothing.
///
/// ```swift
/// let trial = Workflow("trial") { (ctx, user: String) -> Bool in
///     try await sendWelcome(ctx, user)
///     try await ctx.sleep(for: .seconds(14 * 86_400))     // two weeks; the process may restart meanwhile
///     return try await convertOrExpire(ctx, user)
/// }
/// ```
///
/// The deadline is fixed by the first run and recorded (a `TimerScheduled` step, `edda.sleep:1`,
/// …): a replay waits for the recorded deadline, never for a new one. A wait longer than
/// ``EddaApp/Configuration-swift.struct/maxInMemoryWait`` ends the run: the instance is released,
/// holding no lease, task or memory, and the worker that released it wakes at the deadline (any
/// worker does, on a shared database). Shorter waits sleep in place.
extension WorkflowContext {
    /// Waits for `duration`, durably.
    ///
    /// - Parameters:
    ///   - duration: How long, from the first time this call runs. Replays keep that deadline.
    ///   - timerID: An explicit step ID, for timers in loops whose length may change. Defaults to
    ///     `edda.sleep:N`.
    /// - Throws: ``NonDeterminismError`` when history recorded another step here; an error that
    ///   stops the run (shutdown, a lost lease, a long wait) — do not catch it to carry on: the run
    ///   stops anyway.
    public func sleep(for duration: Duration, timerID: String? = nil) async throws {
        try await timer(timerID) { $0.addingTimeInterval(duration.seconds) }
    }

    /// Waits until `deadline` on the app's clock, durably.
    ///
    /// - Parameters:
    ///   - deadline: When to go on. A deadline in the past returns at once (and is still recorded).
    ///   - timerID: An explicit step ID. Defaults to `edda.sleep:N`.
    public func sleep(until deadline: Date, timerID: String? = nil) async throws {
        try await timer(timerID) { _ in deadline }
    }

    private struct TimerRecord: Codable {
        var deadlineMilliseconds: Int64

        enum CodingKeys: String, CodingKey {
            case deadlineMilliseconds = "deadline_ms"
        }
    }

    private func timer(_ explicitID: String?, deadline makeDeadline: (Date) -> Date) async throws {
        let reservation = try reserveStep(name: "edda.sleep", explicitID: explicitID)
        let deadline: Date
        if let event = try recordedStep(reservation, kind: .timerScheduled) {
            // A top-level step recorded after this one: the timer fired in an earlier run, whatever
            // the clock says now. (Steps of concurrent branches prove nothing: they may run during it.)
            if let position = reservation.position, hasRecordedStep(afterPosition: position) { return }
            deadline = Date(storedMilliseconds: try decodeRecorded(event, as: TimerRecord.self).deadlineMilliseconds)
        } else {
            deadline = makeDeadline(environment.clock.now())
            let record = TimerRecord(deadlineMilliseconds: deadline.millisecondsSince1970)
            try await appendRecord(reservation, kind: .timerScheduled, payload: try JSONPayload.encode(record))
        }
        try await wait(until: deadline)
    }

    /// Sleeps in place until `deadline` if it is near, or ends the run as waiting.
    func wait(until deadline: Date) async throws {
        try run.withMachine { try $0.beforeSleep(cancellable: true) }
        let remaining = deadline.timeIntervalSince(environment.clock.now())
        guard remaining > 0 else { return }
        guard remaining <= environment.maxInMemoryWait.seconds else {
            stop(.waiting(until: deadline))
            throw RunWaiting(until: deadline, instanceID: instanceID)
        }
        do {
            try await run.sleep(until: deadline, clock: environment.clock)
        } catch is CancellationError {
            // The engine's own task was cancelled: the app stops.
            stop(.shutdown)
            throw RunStopped(reason: .shutdown, instanceID: instanceID)
        }
    }
}
