public import Logging

/// What an activity's body knows about the call it is serving.
///
/// ```swift
/// let charge = Activity("charge_payment") { (ctx, orderID: String) -> Receipt in
///     // The same key on every attempt and after every crash: let the payment API deduplicate.
///     try await payments.charge(orderID, idempotencyKey: ctx.idempotencyKey)
/// }
/// ```
public struct ActivityContext: Sendable {
    /// The workflow instance this step belongs to.
    public let instanceID: String
    /// The workflow's registered name.
    public let workflowName: String
    /// The activity's name.
    public let activityName: String
    /// The step's ID: `"charge_payment:1"` or the `activityID:` given at the call.
    public let stepID: String
    /// The step's number in this run of the workflow (1-based, in request order).
    public let currentStep: Int
    /// Which attempt this is, starting at 1.
    public let attempt: Int
    let baseLogger: Logger
    /// What this attempt commits with its record; see ``transaction(_:)``.
    let stepTransaction: StepTransaction
    /// Propagates the trace context into the events this step enqueues.
    var observer: Observer? = nil
    /// When the attempt last sent a heartbeat, for an activity with a heartbeat timeout.
    var heartbeats: Heartbeat? = nil
    /// The run, which keeps heartbeat details for the step's next attempt.
    var run: ActiveRun? = nil

    /// Logger with `edda.instance.id`, `edda.workflow.name`, `edda.step.id` and `edda.attempt` metadata.
    ///
    /// Built when you ask for it: a step that does not log pays nothing for it.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "edda.instance.id"] = "\(instanceID)"
        logger[metadataKey: "edda.workflow.name"] = "\(workflowName)"
        logger[metadataKey: "edda.step.id"] = "\(stepID)"
        logger[metadataKey: "edda.attempt"] = "\(attempt)"
        return logger
    }

    /// Always `false`: an activity's body only runs when its result is not in history.
    public var isReplaying: Bool { false }

    /// A key that stays the same for this step across attempts, crashes and workers:
    /// `"<instanceID>/<stepID>"`. Pass it to external APIs that deduplicate requests, so an
    /// activity that crashed after the API call but before its result was recorded does not act twice.
    public var idempotencyKey: String { "\(instanceID)/\(stepID)" }

    /// Reports that the body is alive and making progress: the activity's
    /// ``Activity/heartbeatTimeout`` counts from now again.
    ///
    /// ```swift
    /// let importRows = Activity("import_rows", heartbeatTimeout: .seconds(30)) { (ctx, file: URL) -> Int in
    ///     var done = ctx.heartbeatDetails(as: Int.self) ?? 0     // resume where a timed-out attempt got to
    ///     for batch in try batches(of: file, from: done) {
    ///         try await insert(batch)
    ///         done += batch.count
    ///         try ctx.heartbeat(done)
    ///     }
    ///     return done
    /// }
    /// ```
    ///
    /// - Throws: `CancellationError` when the attempt was given up (a limit passed) or the run is
    ///   stopping: the body should stop then.
    public func heartbeat() throws {
        heartbeats?.beat()
        try Task.checkCancellation()
    }

    /// Reports progress with `details`, which the next attempt of this step in this run reads with
    /// ``heartbeatDetails(as:)`` — so a retried attempt can resume where this one got to. Details
    /// are kept in memory, not in the store: after a crash the next run starts without them.
    ///
    /// - Throws: `CancellationError` as ``heartbeat()`` does, or the error encoding `details` threw.
    public func heartbeat<Details: Encodable & Sendable>(_ details: Details) throws {
        run?.recordHeartbeatDetails(try JSONPayload.encode(details), stepID: stepID)
        heartbeats?.beat()
        try Task.checkCancellation()
    }

    /// The details of the latest heartbeat an earlier attempt of this step sent in this run (see
    /// ``heartbeat(_:)``), or `nil` — on the first attempt, after a crash, or when they do not decode as `Details`.
    public func heartbeatDetails<Details: Decodable>(as type: Details.Type = Details.self) -> Details? {
        try? run?.heartbeatDetails(stepID: stepID)?.decode(Details.self)
    }
}
