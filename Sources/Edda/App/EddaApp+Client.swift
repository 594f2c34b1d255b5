import Foundation

/// The ``client``'s operations, on the app: start, find, cancel, retry and await instances, and
/// send events and messages. Each does exactly what the ``EddaClient`` method of the same name does.
extension EddaApp {
    /// Validates the arguments, creates an instance and runs it, cancelled if it has not finished
    /// `timeout` from now (or the workflow's own timeout): ``EddaClient/start(_:_:instanceID:timeout:runTimeout:)``.
    ///
    /// ```swift
    /// let handle = try await app.start(checkout, cart, timeout: .seconds(30))
    /// ```
    @discardableResult
    public func start<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>, _ arguments: repeat each Argument, instanceID: String? = nil,
        timeout: Duration? = nil, runTimeout: Duration? = nil
    ) async throws -> WorkflowHandle<Output> {
        try await client.start(workflow, repeat each arguments, instanceID: instanceID, timeout: timeout, runTimeout: runTimeout)
    }

    /// Validates the arguments and creates an instance on `queue`, queued until a worker admits it:
    /// ``EddaClient/start(_:_:instanceID:on:priority:deduplicationID:partitionKey:queueTimeout:timeout:runTimeout:)``.
    @discardableResult
    public func start<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>, _ arguments: repeat each Argument, instanceID: String? = nil, on queue: Queue,
        priority: Int = 0, deduplicationID: String? = nil, partitionKey: String? = nil, queueTimeout: Duration? = nil,
        timeout: Duration? = nil, runTimeout: Duration? = nil
    ) async throws -> WorkflowHandle<Output> {
        try await client.start(
            workflow, repeat each arguments, instanceID: instanceID, on: queue, priority: priority, deduplicationID: deduplicationID,
            partitionKey: partitionKey, queueTimeout: queueTimeout, timeout: timeout, runTimeout: runTimeout
        )
    }

    /// Registers `queue`, so that this app's worker admits its queued instances within its limits,
    /// which the worker writes to the store when it starts: ``EddaClient/register(_:)``.
    public func register(_ queue: Queue) {
        client.register(queue)
    }

    /// Starts the registered workflow `name` from its arguments as JSON, on a registered queue or
    /// none: ``EddaClient/start(workflowNamed:input:instanceID:queue:priority:deduplicationID:partitionKey:queueTimeout:timeout:runTimeout:)``.
    @discardableResult
    public func start(
        workflowNamed name: String, input: JSONPayload, instanceID: String? = nil, queue: String? = nil, priority: Int = 0,
        deduplicationID: String? = nil, partitionKey: String? = nil, queueTimeout: Duration? = nil,
        timeout: Duration? = nil, runTimeout: Duration? = nil
    ) async throws -> String {
        try await client.start(
            workflowNamed: name, input: input, instanceID: instanceID, queue: queue, priority: priority, deduplicationID: deduplicationID,
            partitionKey: partitionKey, queueTimeout: queueTimeout, timeout: timeout, runTimeout: runTimeout
        )
    }

    /// Cancels an instance: ``EddaClient/cancel(_:)``.
    public func cancel(_ instanceID: String) async throws {
        try await client.cancel(instanceID)
    }

    /// Cancels an instance and reports whether that took effect: ``EddaClient/requestCancellation(of:)``.
    @discardableResult
    public func requestCancellation(of instanceID: String) async throws -> CancellationRequest {
        try await client.requestCancellation(of: instanceID)
    }

    /// Starts a new instance whose history is `instanceID`'s before `stepID`, to run that step and
    /// what follows again with today's code: ``EddaClient/fork(_:fromStep:instanceID:)``.
    @discardableResult
    public func fork(_ instanceID: String, fromStep stepID: String, instanceID newInstanceID: String? = nil) async throws -> ForkedInstance {
        try await client.fork(instanceID, fromStep: stepID, instanceID: newInstanceID)
    }

    /// Runs a failed instance again from its failed step, recording who asked: ``EddaClient/retry(_:requestedBy:)``.
    @discardableResult
    public func retry(_ instanceID: String, requestedBy: String = "app") async throws -> String? {
        try await client.retry(instanceID, requestedBy: requestedBy)
    }

    /// Waits for an instance of any workflow to finish, and returns it: ``EddaClient/waitUntilFinished(_:)``.
    @discardableResult
    public func waitUntilFinished(_ instanceID: String) async throws -> WorkflowInstance {
        try await client.waitUntilFinished(instanceID)
    }

    /// A handle to an existing instance of `workflow`: ``EddaClient/handle(for:instanceID:)``.
    public func handle<each Argument, Output>(for workflow: Workflow<repeat each Argument, Output>, instanceID: String) -> WorkflowHandle<Output> {
        client.handle(for: workflow, instanceID: instanceID)
    }

    /// One instance: ``EddaClient/instance(_:)``.
    public func instance(_ instanceID: String) async throws -> WorkflowInstance? {
        try await client.instance(instanceID)
    }

    /// An instance's history: ``EddaClient/history(of:)``.
    public func history(of instanceID: String) async throws -> [HistoryEvent] {
        try await client.history(of: instanceID)
    }

    /// A page of an instance's history: ``EddaClient/history(of:matching:)``.
    public func history(of instanceID: String, matching query: HistoryQuery) async throws -> [HistoryEvent] {
        try await client.history(of: instanceID, matching: query)
    }

    /// Instances, newest first: ``EddaClient/instances(status:workflowName:limit:)``.
    public func instances(status: InstanceStatus? = nil, workflowName: String? = nil, limit: Int = 100) async throws -> [WorkflowInstance] {
        try await client.instances(status: status, workflowName: workflowName, limit: limit)
    }

    /// The store's queues with their counts: ``EddaClient/queues()``.
    public func queues() async throws -> [QueueSummary] {
        try await client.queues()
    }

    /// The application versions with unfinished instances: ``EddaClient/applicationVersions()``.
    public func applicationVersions() async throws -> [ApplicationVersionSummary] {
        try await client.applicationVersions()
    }

    /// A queued instance's place in line: ``EddaClient/queuePosition(of:)``.
    public func queuePosition(of instanceID: String) async throws -> Int? {
        try await client.queuePosition(of: instanceID)
    }

    /// A page of instances: ``EddaClient/instances(matching:)``.
    public func instances(matching query: InstanceQuery) async throws -> InstancePage {
        try await client.instances(matching: query)
    }

    /// Workflows this service started instances of that this app's worker does not claim:
    /// ``EddaClient/unresumableWorkflows``.
    public var unresumableWorkflows: [String: Int] {
        client.unresumableWorkflows
    }

    /// The names of the registered workflows.
    public var registeredWorkflowNames: [String] {
        registry.names
    }

    /// The shape of each argument of the registered workflow `name`: ``WorkflowRegistry/inputShapes(ofWorkflowNamed:)``.
    public func inputShapes(ofWorkflowNamed name: String) -> [InputShape]? {
        registry.inputShapes(ofWorkflowNamed: name)
    }

    /// Delivers `event` to every instance waiting for its type right now: ``EddaClient/sendEvent(_:)``.
    @discardableResult
    public func sendEvent(_ event: CloudEvent) async throws -> [String] {
        try await client.sendEvent(event)
    }

    /// Delivers `event` to one instance, now or when it next waits: ``EddaClient/sendEvent(_:to:retention:)``.
    @discardableResult
    public func sendEvent(_ event: CloudEvent, to instanceID: String, retention: Duration = .seconds(7 * 86_400)) async throws -> Bool {
        try await client.sendEvent(event, to: instanceID, retention: retention)
    }

    /// Publishes `message` on a broadcast or competing channel: ``EddaClient/publish(_:_:)``.
    @discardableResult
    public func publish<Message>(_ channel: Channel<Message>, _ message: Message) async throws -> [String] {
        try await client.publish(channel, message)
    }

    /// Sends `message` on a direct channel to one instance: ``EddaClient/send(_:to:_:)``.
    public func send<Message>(_ channel: Channel<Message>, to instanceID: String, _ message: Message) async throws {
        try await client.send(channel, to: instanceID, message)
    }

    /// Makes every ingested event of `type` start `workflow`: ``EddaClient/startOnEvent(_:_:)``.
    public func startOnEvent<Input, Output>(_ type: String, _ workflow: Workflow<Input, Output>) throws {
        try client.startOnEvent(type, workflow)
    }

    /// Takes in an event from outside: ``EddaClient/ingest(_:)``.
    public func ingest(_ event: CloudEvent) async throws -> EventReceipt {
        try await client.ingest(event)
    }

    /// The CloudEvents extension attribute that routes an event to one instance: `eddainstanceid`.
    public static var instanceExtension: String { EddaClient.instanceExtension }
}
