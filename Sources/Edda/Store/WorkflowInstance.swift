public import Foundation

/// A workflow instance as the store holds it.
public struct WorkflowInstance: Sendable {
    public var instanceID: String
    public var workflowName: String
    /// The ``EddaApp/serviceName`` of the app that created the instance.
    public var serviceName: String
    public var status: InstanceStatus
    /// The workflow's arguments as a JSON array, one element per argument.
    public var input: JSONPayload
    /// The result, once ``status`` is ``InstanceStatus/completed``.
    public var output: JSONPayload?
    /// Why the instance failed, once ``status`` is ``InstanceStatus/failed``.
    public var error: ErrorRecord?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        instanceID: String, workflowName: String, serviceName: String, status: InstanceStatus, input: JSONPayload,
        output: JSONPayload? = nil, error: ErrorRecord? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.instanceID = instanceID
        self.workflowName = workflowName
        self.serviceName = serviceName
        self.status = status
        self.input = input
        self.output = output
        self.error = error
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// What ``Store/createInstance(_:)`` is asked to insert.
public struct NewInstance: Sendable {
    public var instanceID: String
    public var workflowName: String
    public var serviceName: String
    public var input: JSONPayload
    /// The worker that will run it.
    public var workerID: String

    public init(instanceID: String, workflowName: String, serviceName: String, input: JSONPayload, workerID: String) {
        self.instanceID = instanceID
        self.workflowName = workflowName
        self.serviceName = serviceName
        self.input = input
        self.workerID = workerID
    }
}

/// How a workflow instance ended.
public enum InstanceOutcome: Sendable {
    case completed(JSONPayload)
    case failed(ErrorRecord)
}

/// Filters for ``EddaApp/instances(status:workflowName:limit:)``.
public struct InstanceQuery: Sendable {
    public var status: InstanceStatus?
    public var workflowName: String?
    /// At most this many, newest first. Defaults to 100.
    public var limit: Int

    public init(status: InstanceStatus? = nil, workflowName: String? = nil, limit: Int = 100) {
        self.status = status
        self.workflowName = workflowName
        self.limit = limit
    }
}
