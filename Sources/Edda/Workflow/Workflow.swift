import Synchronization

/// Orchestration logic: a durable `async` function that calls activities.
///
/// ```swift
/// let userSignup = Workflow("user_signup") { (ctx, email: String, name: String) -> SignupResult in
///     let user = try await createAccount(ctx, email, name)
///     try await sendEmail(ctx, email, "Welcome, \(name)!")
///     try await setupDefaultSettings(ctx, user.userID)
///     return SignupResult(userID: user.userID, status: "active")
/// }
/// ```
///
/// A workflow's body may run many times: after a crash or a restart it runs again from the top,
/// and every activity call that already has a recorded outcome returns it without running.
/// So the body must make the same calls in the same order when given the same recorded results:
/// base decisions on activity results, and wrap anything that reads the outside world (time,
/// randomness, a database) in an activity.
public struct Workflow<each Argument: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// The name stored with each instance; resuming an instance looks the workflow up by it.
    public let name: String
    let body: @Sendable (WorkflowContext, repeat each Argument) async throws -> Output
    let validator: (@Sendable (repeat each Argument) throws -> Void)?
    /// The timeouts of its instances, unless a start gives its own.
    let timeouts: InstanceTimeouts
    /// Shared by copies of this value: tells "the same workflow registered twice" from "two
    /// workflows under one name".
    let identity = WorkflowIdentity()

    /// Creates a workflow.
    ///
    /// An instance that has not finished when a timeout passes is cancelled as ``EddaApp/cancel(_:)``
    /// cancels one — it stops at its next step boundary and its compensations run — and ends
    /// ``InstanceStatus/cancelled``, its ``WorkflowCancelledError/deadlineExceeded`` saying which
    /// timeout passed. A deadline holds whether the instance runs, waits (for a timer, an event, a
    /// message, a child) or is not claimed yet; a child workflow inherits its parent's deadline when
    /// that is earlier than its own. Deadlines are kept on the database's clock.
    ///
    /// ```swift
    /// let checkout = Workflow("checkout", timeout: .seconds(30)) { (ctx, cart: Cart) -> Receipt in … }
    /// let poller = Workflow("poller", runTimeout: .minutes(5)) { (ctx, cursor: Int) -> Int in … }
    /// ```
    ///
    /// - Parameters:
    ///   - name: The registered name. Keep it stable while instances are in flight.
    ///   - timeout: How long an instance may take from its start to its end, across continue-as-new
    ///     (the workflow timeout). A start may give its own (``EddaApp/start(_:_:instanceID:timeout:runTimeout:)``).
    ///     `nil` (the default): no limit.
    ///   - runTimeout: How long one run of a continue-as-new chain may take; each
    ///     ``WorkflowContext/continueAsNew(with:)`` starts the next run's clock. `nil` (the default): no limit.
    ///   - validate: Checks the arguments before an instance is created, in addition to
    ///     ``Validatable`` conformances of the argument types. Throw ``ValidationError`` to reject.
    ///   - body: The orchestration. Arguments and result must be `Codable`.
    ///
    /// A timeout must be at least 1 ms (a precondition).
    public init(
        _ name: String,
        timeout: Duration? = nil,
        runTimeout: Duration? = nil,
        validate: (@Sendable (repeat each Argument) throws -> Void)? = nil,
        _ body: @escaping @Sendable (WorkflowContext, repeat each Argument) async throws -> Output
    ) {
        precondition(!name.isEmpty, "A workflow needs a non-empty name")
        let timeouts = InstanceTimeouts(workflow: timeout, run: runTimeout)
        if let problem = timeouts.problem { preconditionFailure("Workflow '\(name)': \(problem). Pass nil for no timeout.") }
        self.timeouts = timeouts
        self.name = name
        self.validator = validate
        self.body = body
    }

    /// Runs every check on the arguments: each ``Validatable`` argument, then the `validate` closure.
    func validate(_ arguments: repeat each Argument) throws {
        for argument in repeat each arguments {
            if let validatable = argument as? any Validatable {
                try validatable.validate()
            }
        }
        try validator?(repeat each arguments)
    }

    var registration: RegisteredWorkflow {
        let name = self.name
        let body = self.body
        return RegisteredWorkflow(
            name: name, identity: ObjectIdentifier(identity), timeouts: timeouts,
            inputShapes: InputShapes {
                var shapes: [InputShape] = []
                for type in repeat (each Argument).self {
                    shapes.append(InputShape.of(type))
                }
                return shapes
            },
            checkInput: { [self] input in
                let arguments = try input.decode(ArgumentList<repeat each Argument>.self)
                try validate(repeat each arguments.values)
            }
        ) { context, input in
            let arguments: ArgumentList<repeat each Argument>
            do {
                arguments = try input.decode(ArgumentList<repeat each Argument>.self)
            } catch {
                let failure = EngineError(
                    .corruptInput,
                    "The stored input of instance \(context.instanceID) cannot be decoded as the arguments of workflow "
                        + "'\(name)'. The instance was left unchanged apart from its status.",
                    instanceID: context.instanceID, cause: error
                )
                context.fail(with: failure)
                throw failure
            }
            let output = try await body(context, repeat each arguments.values)
            do {
                return try JSONPayload.encode(output)
            } catch {
                throw EngineError(
                    .encodingFailed, "The result of workflow '\(name)' could not be encoded as JSON.",
                    instanceID: context.instanceID, cause: error
                )
            }
        }
    }
}

/// A workflow with its types erased, as the app's registry keeps it.
struct RegisteredWorkflow: Sendable {
    let name: String
    let identity: ObjectIdentifier
    /// The timeouts of its instances, unless a start gives its own.
    let timeouts: InstanceTimeouts
    /// The shape of each argument (probed when first asked: registration is on every start's path).
    let inputShapes: InputShapes
    /// Throws unless `input` decodes as this workflow's arguments and they pass its validation.
    let checkInput: @Sendable (JSONPayload) throws -> Void
    let run: @Sendable (WorkflowContext, JSONPayload) async throws -> JSONPayload
}

/// A workflow's argument shapes, probed once, when first asked for.
final class InputShapes: Sendable {
    private let probe: @Sendable () -> [InputShape]
    private let shapes = Mutex<[InputShape]?>(nil)

    init(_ probe: @escaping @Sendable () -> [InputShape]) {
        self.probe = probe
    }

    var value: [InputShape] {
        if let known = shapes.withLock({ $0 }) { return known }
        let probed = probe()
        shapes.withLock { $0 = probed }
        return probed
    }
}

/// The identity of one ``Workflow`` value and its copies.
final class WorkflowIdentity: Sendable {}
