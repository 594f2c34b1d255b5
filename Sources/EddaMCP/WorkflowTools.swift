public import Edda
public import MCP
import Foundation

/// Chosen workflows of an app as MCP tools, so an AI client can start durable work, follow it, fetch
/// its result and cancel it — and a long task survives the client disconnecting and the server
/// restarting, because the instance lives in the store, not in the connection.
///
/// For each workflow `name` there are four tools:
/// - `name` starts an instance and returns its ID at once. Its input schema is the workflow's
///   arguments (``InputShape/jsonSchema``) under `arguments`; `idempotency_key` makes a repeated call
///   return the instance the first one started instead of starting another.
/// - `name_status` says where an instance is: its status, how many steps it recorded, its last step.
/// - `name_result` waits for the result up to a bound (``resultWait``), then says it is still running.
/// - `name_cancel` cancels it (its compensations run).
///
/// ```swift
/// let server = Server(name: "research-agent", version: "1.0.0", capabilities: .init(tools: .init()))
/// let tools = WorkflowTools(app: app, workflows: ["research"])
/// await tools.register(on: server)
/// try await server.start(transport: StdioTransport())
/// ```
public struct WorkflowTools: Sendable {
    /// The app whose workflows the tools start; its worker (or another app's, on the same store) runs them.
    public let app: EddaApp
    /// The workflows exposed, by registered name.
    public let workflows: [String]
    /// How long a `_result` call waits for a running instance before answering "still running".
    public var resultWait: Duration

    /// Tools for `workflows` (registered names), or for every workflow `app` registers when `nil`.
    public init(app: EddaApp, workflows: [String]? = nil, resultWait: Duration = .seconds(20)) {
        self.app = app
        self.workflows = workflows ?? app.registeredWorkflowNames
        self.resultWait = resultWait
    }

    /// Registers the tools' `tools/list` and `tools/call` handlers on `server`, which must declare
    /// the tools capability.
    public func register(on server: Server) async {
        let tools = self
        await server.withMethodHandler(ListTools.self) { _ in ListTools.Result(tools: tools.tools) }
        await server.withMethodHandler(CallTool.self) { parameters in await tools.call(parameters.name, arguments: parameters.arguments) }
    }

    /// Starts an MCP server named `name` that serves these tools on `transport` — `StdioTransport()`
    /// for a local client that launches this process, the SDK's in-memory transport in tests — and
    /// returns it; `await server.waitUntilCompleted()` keeps serving until the client goes, and
    /// `await server.stop()` ends it.
    public func serve(on transport: any Transport, name: String, version: String = "1.0.0") async throws -> Server {
        let server = Server(name: name, version: version, capabilities: .init(tools: .init(listChanged: false)))
        await register(on: server)
        try await server.start(transport: transport)
        return server
    }

    /// The tools: four per workflow.
    public var tools: [Tool] {
        workflows.flatMap { name -> [Tool] in
            let instance: Value = .object([
                "type": "object", "required": ["instance_id"],
                "properties": ["instance_id": ["type": "string", "description": "The ID the start tool returned."]],
            ])
            return [
                Tool(
                    name: name, description: "Start workflow \(name). Returns the instance ID at once; the work goes on durably.",
                    inputSchema: startSchema(of: name), annotations: .init(idempotentHint: true, openWorldHint: true)
                ),
                Tool(
                    name: "\(name)_status", description: "Where an instance of \(name) is: its status, steps recorded, the last step.",
                    inputSchema: instance, annotations: .init(readOnlyHint: true)
                ),
                Tool(
                    name: "\(name)_result",
                    description: "The result of an instance of \(name), waiting up to \(resultWait.formatted(.units(allowed: [.seconds, .milliseconds], width: .abbreviated))); "
                        + "if it is still running then, says so (call again later).",
                    inputSchema: instance, annotations: .init(readOnlyHint: true)
                ),
                Tool(
                    name: "\(name)_cancel", description: "Cancel an instance of \(name); its compensations run.",
                    inputSchema: instance, annotations: .init(destructiveHint: true, idempotentHint: true)
                ),
            ]
        }
    }

    /// Answers one tool call; errors come back as tool errors (`isError`), saying what to change.
    public func call(_ name: String, arguments: [String: Value]?) async -> CallTool.Result {
        let arguments = arguments ?? [:]
        do {
            if workflows.contains(name) { return try await start(name, arguments) }
            for (suffix, action) in [("_status", status), ("_result", result), ("_cancel", cancel)] where name.hasSuffix(suffix) {
                let workflow = String(name.dropLast(suffix.count))
                guard workflows.contains(workflow) else { break }
                guard case .string(let id)? = arguments["instance_id"], !id.isEmpty else {
                    return Self.failure("'instance_id' is required: the ID the \(workflow) tool returned.")
                }
                guard let instance = try await app.instance(id), instance.workflowName == workflow else {
                    return Self.failure("No instance \(id) of workflow \(workflow).")
                }
                return try await action(instance)
            }
            return Self.failure("No tool named '\(name)'. Tools: \(tools.map(\.name).joined(separator: ", ")).")
        } catch let error as EngineError {
            return Self.failure(error.message)
        } catch {
            return Self.failure("\(error)")
        }
    }

    // MARK: - The four tools

    private func start(_ name: String, _ arguments: [String: Value]) async throws -> CallTool.Result {
        for key in arguments.keys.sorted() where key != "arguments" && key != "idempotency_key" {
            return Self.failure("Unknown argument '\(key)': the tool takes 'arguments' (the workflow's, in order) and 'idempotency_key'.")
        }
        let input = arguments["arguments"] ?? .array([])
        guard case .array = input else { return Self.failure("'arguments' must be an array: the workflow's arguments, in order.") }
        var instanceID: String?
        if let key = arguments["idempotency_key"] {
            guard case .string(let key) = key, !key.isEmpty else { return Self.failure("'idempotency_key' must be a non-empty string.") }
            instanceID = "mcp-\(name)-\(key)"
        }
        let id = try await app.start(workflowNamed: name, input: JSONPayload(data: try JSONEncoder().encode(input)), instanceID: instanceID)
        let status = try await app.instance(id)?.displayStatus.rawValue ?? "running"
        return Self.success(["instance_id": .string(id), "status": .string(status)])
    }

    private func status(_ instance: WorkflowInstance) async throws -> CallTool.Result {
        let history = try await app.history(of: instance.instanceID)
        var document: [String: Value] = [
            "instance_id": .string(instance.instanceID), "status": .string(instance.displayStatus.rawValue),
            "steps_recorded": .int(history.count),
        ]
        if let last = history.last { document["last_step"] = .string(last.stepID) }
        if let wait = instance.waitingFor { document["waiting_for"] = .string("\(wait.kind)") }
        return Self.success(document)
    }

    private func result(_ instance: WorkflowInstance) async throws -> CallTool.Result {
        // The app's outcome wait wakes as soon as the instance finishes, here or (announced by the
        // store) elsewhere; the bound ends it first if not.
        let (app, id, wait) = (self.app, instance.instanceID, resultWait)
        _ = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await app.waitUntilFinished(id)) != nil }
            group.addTask {
                try? await Task.sleep(for: wait)
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
        let current = try await app.instance(id) ?? instance
        switch current.status {
        case .completed:
            let output = try current.output.map { try JSONDecoder().decode(Value.self, from: $0.data) } ?? .null
            return Self.success(["instance_id": .string(current.instanceID), "status": "completed", "output": output])
        case .failed, .cancelled:
            let error = current.error.map { "\($0)" } ?? "\(current.status)"
            return CallTool.Result(
                content: [.text("Instance \(current.instanceID) \(current.status): \(error)")],
                structuredContent: ["instance_id": .string(current.instanceID), "status": .string(current.status.rawValue), "error": .string(error)],
                isError: true
            )
        default:
            return Self.success([
                "instance_id": .string(current.instanceID), "status": .string(current.displayStatus.rawValue),
                "note": "still running: call this tool again later",
            ])
        }
    }

    private func cancel(_ instance: WorkflowInstance) async throws -> CallTool.Result {
        let outcome = try await app.requestCancellation(of: instance.instanceID)
        let cancelled: Bool = if case .requested = outcome { true } else { false }
        return Self.success(["instance_id": .string(instance.instanceID), "cancel_requested": .bool(cancelled)])
    }

    // MARK: - Shapes

    /// `{"arguments": [the workflow's arguments], "idempotency_key": "…"}`.
    private func startSchema(of name: String) -> Value {
        let shapes = app.inputShapes(ofWorkflowNamed: name) ?? []
        var schema: [String: Any] = [
            "type": "object",
            "properties": [
                "arguments": [
                    "type": "array", "prefixItems": shapes.map(\.jsonSchema), "minItems": shapes.count, "maxItems": shapes.count,
                    "description": "The workflow's arguments, in order.",
                ] as [String: Any],
                "idempotency_key": [
                    "type": "string", "description": "Calls with the same key start one instance; a repeat returns it.",
                ] as [String: Any],
            ] as [String: Any],
        ]
        schema["required"] = shapes.isEmpty ? [] : ["arguments"]
        return (try? JSONSerialization.data(withJSONObject: schema)).flatMap { try? JSONDecoder().decode(Value.self, from: $0) } ?? .object([:])
    }

    private static func success(_ document: [String: Value]) -> CallTool.Result {
        let text = (try? String(decoding: JSONEncoder().encode(Value.object(document)), as: UTF8.self)) ?? ""
        return CallTool.Result(content: [.text(text)], structuredContent: .object(document), isError: false)
    }

    private static func failure(_ message: String) -> CallTool.Result {
        CallTool.Result(content: [.text(message)], isError: true)
    }
}
