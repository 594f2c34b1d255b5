/// A unit of business logic whose result is recorded in the workflow's history.
///
/// Define one as a value with typed `Codable` arguments and result, then call it from a workflow
/// like a function:
///
/// ```swift
/// let sendEmail = Activity("send_email") { (ctx, email: String, message: String) -> EmailReceipt in
///     let id = try await mailer.send(to: email, message)
///     return EmailReceipt(sent: true, messageID: id)
/// }
///
/// // in a workflow:
/// let receipt = try await sendEmail(ctx, "ada@example.com", "Welcome!")
/// ```
///
/// The first time a call runs, its result (or its final error) is appended to history in one
/// transaction. When the workflow is replayed after a crash, the call returns the recorded result
/// and the body does not run again.
///
/// Each call gets a step ID: `send_email:1`, `send_email:2`, … counting calls of that name in
/// order, or the `activityID:` you pass (needed in loops whose length may change, and for
/// concurrent calls of the same activity).
///
/// A body that throws is retried according to its ``RetryPolicy`` (the app's default unless given);
/// throw ``TerminalError`` to stop at once. An attempt may also be given a ``timeout`` and a
/// ``heartbeatTimeout``: past either, it fails with ``ActivityTimeoutError`` and is retried the same way.
public struct Activity<each Argument: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// The name recorded in history and checked on replay. Keep it stable once instances exist.
    public let name: String
    /// The retry policy, or `nil` to use ``EddaApp/Configuration-swift.struct/defaultRetryPolicy``.
    public var retryPolicy: RetryPolicy?
    /// Whether the body runs inside the transaction that records its result; see ``TransactionMode``.
    public var transactionMode: TransactionMode
    /// How long one attempt may take, from its start to its result (Temporal's start-to-close
    /// timeout), or `nil` for no limit. Past it the attempt fails with ``ActivityTimeoutError``.
    public var timeout: Duration?
    /// How long the body may go without calling ``ActivityContext/heartbeat()`` (counted from the
    /// attempt's start, then from each heartbeat), or `nil` for no limit. Past it the attempt fails
    /// with ``ActivityTimeoutError``: a body stuck on a call that never answers is found at once,
    /// while a long one that reports progress runs as long as it needs (within ``timeout``).
    public var heartbeatTimeout: Duration?
    /// The compensation linked with ``onFailure(_:)``.
    public internal(set) var compensation: Compensation<repeat each Argument, Output>?
    let body: @Sendable (ActivityContext, repeat each Argument) async throws -> Output

    /// Creates an activity.
    ///
    /// - Parameters:
    ///   - name: The name recorded in history. Must be unique among the activities a workflow calls.
    ///   - retry: The retry policy; `nil` (the default) uses the app's default policy.
    ///   - transaction: ``TransactionMode/atCommit`` (the default) or ``TransactionMode/wholeBody``,
    ///     to run the whole body inside the transaction that records its result.
    ///   - timeout: How long one attempt may take (``timeout``); `nil` (the default) for no limit.
    ///   - heartbeatTimeout: How long the body may go without a heartbeat (``heartbeatTimeout``);
    ///     `nil` (the default) for no limit.
    ///   - body: The work. Its arguments and result must be `Codable`.
    ///
    /// A ``TransactionMode/wholeBody`` activity takes neither limit: its body holds the store's
    /// transaction, which the store bounds itself (PostgreSQL: `wholeBodyTimeout`).
    public init(
        _ name: String,
        retry: RetryPolicy? = nil,
        transaction: TransactionMode = .atCommit,
        timeout: Duration? = nil,
        heartbeatTimeout: Duration? = nil,
        _ body: @escaping @Sendable (ActivityContext, repeat each Argument) async throws -> Output
    ) {
        precondition(!name.isEmpty, "An activity needs a non-empty name")
        for (label, limit) in [("timeout", timeout), ("heartbeatTimeout", heartbeatTimeout)] {
            if let limit {
                precondition(limit >= .milliseconds(1), "Activity '\(name)': \(label) must be at least 1 ms; it is \(limit).")
                precondition(
                    transaction == .atCommit,
                    "Activity '\(name)': a whole-body activity takes no \(label); its store bounds its transaction (PostgreSQL: wholeBodyTimeout)."
                )
            }
        }
        self.name = name
        self.retryPolicy = retry
        self.transactionMode = transaction
        self.timeout = timeout
        self.heartbeatTimeout = heartbeatTimeout
        self.body = body
    }

    /// The per-attempt limits, as the step executor takes them.
    var limits: AttemptLimits { AttemptLimits(timeout: timeout, heartbeatTimeout: heartbeatTimeout) }

    /// Runs the activity as the workflow's next step, or returns its recorded result on replay.
    ///
    /// - Parameters:
    ///   - context: The calling workflow's context.
    ///   - arguments: The activity's arguments.
    ///   - activityID: An explicit step ID, such as `"process_item:\(i)"`. Defaults to `name:N`.
    /// - Throws: ``TerminalError`` or ``RetryExhaustedError`` when the activity failed (now or in
    ///   the recorded run); ``NonDeterminismError`` when history recorded another step here.
    public func callAsFunction(
        _ context: WorkflowContext,
        _ arguments: repeat each Argument,
        activityID: String? = nil
    ) async throws -> Output {
        let reservation = try context.reserveStep(name: name, explicitID: activityID)
        let output = try await context.runStep(reservation, retryPolicy: retryPolicy, transactionMode: transactionMode, limits: limits) { activityContext in
            try await body(activityContext, repeat each arguments)
        }
        if let compensation {
            try context.pushCompensation(
                PendingCompensation(stepID: "compensate:\(reservation.stepID)", name: compensation.name, retryPolicy: compensation.retryPolicy) {
                    try await compensation.body($0, output, repeat each arguments)
                }
            )
        }
        return output
    }

    /// Reserves the call's step ID and position now, to run it later — typically in a child task.
    ///
    /// Steps started inside `async let` or a task group reach the engine in a racing order. Prepare
    /// them from the workflow's top-level code first, and each keeps the same ID and position on
    /// every replay:
    ///
    /// ```swift
    /// let charges = try items.map { try chargeItem.prepare(ctx, $0) }   // IDs fixed here, in order
    /// let receipts = try await withThrowingTaskGroup(of: Receipt.self) { group in
    ///     for charge in charges { group.addTask { try await charge() } }
    ///     return try await group.reduce(into: []) { $0.append($1) }
    /// }
    /// ```
    public func prepare(
        _ context: WorkflowContext,
        _ arguments: repeat each Argument,
        activityID: String? = nil
    ) throws -> PreparedActivity<Output> {
        let reservation = try context.reserveStep(name: name, explicitID: activityID)
        let policy = retryPolicy
        let mode = transactionMode
        let limits = self.limits
        let body = self.body
        let values = (repeat each arguments)
        let compensation = self.compensation
        return PreparedActivity(stepID: reservation.stepID) {
            let output = try await context.runStep(reservation, retryPolicy: policy, transactionMode: mode, limits: limits) { activityContext in
                try await body(activityContext, repeat each values)
            }
            if let compensation {
                try context.pushCompensation(
                    PendingCompensation(stepID: "compensate:\(reservation.stepID)", name: compensation.name, retryPolicy: compensation.retryPolicy) {
                        try await compensation.body($0, output, repeat each values)
                    }
                )
            }
            return output
        }
    }

    /// A copy with another retry policy.
    public func retry(_ policy: RetryPolicy) -> Self {
        var copy = self
        copy.retryPolicy = policy
        return copy
    }
}

/// An activity call whose step ID is already reserved; call it (once) to run it.
public struct PreparedActivity<Output: Sendable>: Sendable {
    /// The reserved step ID.
    public let stepID: String
    let operation: @Sendable () async throws -> Output

    /// Runs the step, or returns its recorded result on replay.
    public func callAsFunction() async throws -> Output {
        try await operation()
    }
}
