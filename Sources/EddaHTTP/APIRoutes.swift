import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The JSON API's routes.
struct APIRoutes: Sendable {
    let app: EddaApp
    let maxBodyBytes: Int
    /// Whether the server takes a token: a retry records how its caller proved it.
    var signsIn = false

    func register<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        routes.on("/api/instances", .get) { request, _ in try await listInstances(request) }
        routes.on("/api/instances/:id", .get) { _, context in try await instance(try context.parameters.decoded("id")) }
        routes.on("/api/instances/:id/history", .get) { request, context in try await history(request, id: try context.parameters.decoded("id")) }
        routes.on("/api/instances/:id/export", .get) { _, context in try await export(try context.parameters.decoded("id")) }
        routes.on("/api/instances/:id/cancel", .post) { _, context in try await cancel(try context.parameters.decoded("id")) }
        routes.on("/api/instances/cancel", .post) { request, _ in try await cancelMatching(request) }
        routes.on("/api/instances/:id/events", .post) { request, context in try await sendEvent(request, id: try context.parameters.decoded("id")) }
        routes.on("/api/instances/:id/retry", .post) { request, context in
            let id = try context.parameters.decoded("id")
            let requestedBy = ViewerPages.requester("api", request, context, signsIn: signsIn)
            let step = try await app.retry(id, requestedBy: requestedBy)
            let retried: Any = step ?? NSNull()
            // Whether this server's app registers the workflow: `edda serve` registers none, and then
            // only another app on the database runs the retried instance.
            let servedHere = try await app.instance(id).map { app.registeredWorkflowNames.contains($0.workflowName) } ?? false
            return jsonResponse(["instance_id": id, "retried_step": retried, "requested_by": requestedBy, "served_here": servedHere], status: .accepted)
        }
        routes.on("/api/workflows", .get) { _, _ in
            let workflows = app.registeredWorkflowNames.map { name -> [String: Any] in
                ["name": name, "arguments": (app.inputShapes(ofWorkflowNamed: name) ?? []).map(\.jsonSchema)]
            }
            return jsonResponse(["workflows": workflows])
        }
        routes.on("/api/workflows/:name/instances", .post) { request, context in
            try await start(request, name: try context.parameters.decoded("name"))
        }
        routes.on("/api/queues", .get) { _, _ in
            jsonResponse(["queues": try await app.queues().map(QueueText.document)])
        }
        routes.on("/api/versions", .get) { _, _ in
            jsonResponse(["versions": try await app.applicationVersions().map(VersionText.document)])
        }
        routes.on("/api/events", .post) { request, _ in try await receiveEvent(request) }
        registerSchedules(on: &routes)
        registerFork(on: &routes)
        routes.on("/api/openapi.json", .get) { _, _ in jsonResponse(OpenAPIDocument.document) }
    }

    // MARK: - Instances

    func listInstances(_ request: Request) async throws -> Response {
        let filter = try Self.filter(request)
        let page = try await app.instances(matching: filter)
        let counts = try await app.store.statusCounts(matching: filter)
        var document: [String: Any] = [
            "instances": page.instances.map(Self.document(of:)),
            "counts": Dictionary(uniqueKeysWithValues: InstanceStatus.all.map { status -> (String, Int) in (status.rawValue, counts[status] ?? 0) }),
        ]
        document["next"] = page.nextCursor.map { $0.description } ?? NSNull()
        document["previous"] = page.previousCursor.map { $0.description } ?? NSNull()
        return jsonResponse(document)
    }

    /// Cancels every unfinished instance the filter matches (the same filters as the list; at least
    /// one is required, so that an empty query cannot cancel everything).
    func cancelMatching(_ request: Request) async throws -> Response {
        let filter = try Self.filter(request)
        guard Self.hasFilter(filter) else {
            throw APIError.badRequest(
                "Give at least one filter (status, workflow, parent, queue, version, input_key and input_value, created_from, created_before) to cancel by.",
                type: "invalid_filter"
            )
        }
        let (cancelled, skipped) = try await Self.cancelAll(matching: filter, app: app)
        return jsonResponse(["cancelled": cancelled, "already_finished": skipped], status: .accepted)
    }

    /// Asks every unfinished instance `filter` matches to cancel, a page at a time: the IDs that
    /// took the request, and how many had finished meanwhile.
    static func cancelAll(matching query: InstanceQuery, app: EddaApp) async throws -> (cancelled: [String], skipped: Int) {
        var filter = query
        filter.limit = 500
        filter.after = nil
        filter.before = nil
        var cancelled: [String] = []
        var skipped = 0
        while true {
            let page = try await app.instances(matching: filter)
            for instance in page.instances where !instance.status.isTerminal {
                if case .requested = try await app.requestCancellation(of: instance.instanceID) {
                    cancelled.append(instance.instanceID)
                } else {
                    skipped += 1   // finished (or removed) meanwhile
                }
            }
            guard let next = page.nextCursor else { break }
            filter.after = next
        }
        return (cancelled, skipped)
    }

    /// Whether `filter` narrows the list at all: a bulk cancel needs it to.
    static func hasFilter(_ filter: InstanceQuery) -> Bool {
        filter.status != nil || filter.workflowName != nil || filter.parentInstanceID != nil || filter.inputKey != nil || filter.createdFrom != nil
            || filter.createdBefore != nil || filter.queue != nil || filter.applicationVersions != nil
    }

    /// The list filters of a request: `status`, `workflow`, `parent`, `queue`, `version`, `limit`, `after` (or
    /// `before`, to page back), `input_key` + `input_value`, `created_from`, `created_before`.
    /// Throws the first one at fault.
    static func filter(_ request: Request) throws -> InstanceQuery {
        let (filter, errors) = Self.filter(request, emptyValueIsAbsent: false)
        if let first = errors.first { throw first }
        return filter
    }

    /// The list filters of a request and an error for each one at fault (naming it as its field),
    /// so that the viewer can mark every field at once. With `emptyValueIsAbsent` (the viewer's
    /// form sends every field, empty for "any") an empty `input_value` is no value, and a value
    /// without a key is an error too.
    static func filter(_ request: Request, emptyValueIsAbsent: Bool) -> (InstanceQuery, [APIError]) {
        let parameters = request.uri.queryParameters
        // A form sends empty fields for "any": the same as absent.
        func value(_ name: String) -> String? { parameters.get(name).flatMap { $0.isEmpty ? nil : String($0) } }
        var filter = InstanceQuery()
        var errors: [APIError] = []
        if let status = value("status") {
            if let parsed = InstanceStatus(rawValue: status) {
                filter.status = parsed
            } else {
                errors.append(.invalidFilter(
                    "Unknown status '\(status)'; use one of \(InstanceStatus.all.map { $0.rawValue }.joined(separator: ", ")).", field: "status"
                ))
            }
        }
        filter.workflowName = value("workflow")
        filter.parentInstanceID = value("parent")
        filter.queue = value("queue")
        filter.applicationVersions = value("version").map { [$0] }
        if let limit = value("limit") {
            if let value = Int(limit), (1...1000).contains(value) {
                filter.limit = value
            } else {
                errors.append(.invalidFilter("limit must be a number from 1 to 1000, not '\(limit)'.", field: "limit"))
            }
        }
        if let after = value("after") {
            if let cursor = InstanceCursor(after) {
                filter.after = cursor
            } else {
                errors.append(.invalidFilter("'\(after)' is not a cursor: pass the 'next' value of the previous page.", field: "after"))
            }
        }
        if let before = value("before") {
            if let cursor = InstanceCursor(before) {
                filter.before = cursor
            } else {
                errors.append(.invalidFilter("'\(before)' is not a cursor: pass the 'previous' value of the page after it.", field: "before"))
            }
        }
        for (name, keyPath) in [("created_from", \InstanceQuery.createdFrom), ("created_before", \InstanceQuery.createdBefore)] {
            guard let text = value(name) else { continue }
            if let date = Self.date(text) {
                filter[keyPath: keyPath] = date
            } else {
                errors.append(.invalidFilter(
                    "\(name) must be a date (2026-11-25) or a time (2026-11-25T14:30:00Z; UTC without a zone), not '\(text)'.", field: name
                ))
            }
        }
        let inputValue = emptyValueIsAbsent ? value("input_value") : parameters.get("input_value").map { String($0) }
        switch (value("input_key"), inputValue) {
        case (let key?, let value?):
            if InstanceQuery.isValidInputKey(key) {
                filter.inputKey = key
                filter.inputValue = value
            } else {
                errors.append(.invalidFilter("input_key must be a key or a dotted path of keys, not '\(key)'.", field: "input_key"))
            }
        case (nil, let value?) where emptyValueIsAbsent:
            errors.append(.invalidFilter(
                "input_value '\(value)' needs an input_key: the key (or dotted path, such as customer.id) whose value it is.", field: "input_key"
            ))
        case (nil, _):
            break
        case (let key?, nil):
            errors.append(.invalidFilter(
                "input_key needs an input_value: give the value that input key '\(key)' must have, or clear the key.", field: "input_value"
            ))
        }
        return (filter, errors)
    }

    /// A day (`2026-11-25`), a time in UTC (`2026-11-25T14:30`, seconds optional) or an ISO 8601 time with its zone.
    static func date(_ text: String) -> Date? {
        if let time = StartForm.date(text) { return time }
        return try? Date(text + "T00:00:00Z", strategy: .iso8601)
    }

    func instance(_ id: String) async throws -> Response {
        guard let instance = try await app.instance(id) else { throw APIError.notFound("No workflow instance has ID \(id).", field: "id") }
        var document = Self.document(of: instance)
        if instance.status == .queued, let position = try await app.queuePosition(of: id) { document["queue_position"] = position }
        return jsonResponse(document)
    }

    func history(_ request: Request, id: String) async throws -> Response {
        guard try await app.instance(id) != nil else { throw APIError.notFound("No workflow instance has ID \(id).", field: "id") }
        let query = request.uri.queryParameters
        let after = try query.get("after").map { text -> Int64 in
            guard let value = Int64(text) else { throw APIError.invalidFilter("after must be a sequence number, not '\(text)'.", field: "after") }
            return value
        } ?? 0
        let limit = try query.get("limit").map { text -> Int in
            guard let value = Int(text), (1...1000).contains(value) else {
                throw APIError.invalidFilter("limit must be a number from 1 to 1000, not '\(text)'.", field: "limit")
            }
            return value
        } ?? 200
        let kinds = query.get("failed") == "true" ? HistoryEventKind.failures : nil
        // One more than asked: tells whether there is a next page.
        let records = try await app.history(of: id, matching: HistoryQuery(after: after, limit: limit + 1, kinds: kinds))
        let page = records.prefix(limit)
        var document: [String: Any] = ["history": page.map(Self.document(of:))]
        document["next"] = records.count > limit ? page.last.map { "\($0.sequence)" } ?? NSNull() : NSNull()
        return jsonResponse(document)
    }

    /// The instance's history as a ``HistoryExport`` document: the same bytes `edda export` prints.
    func export(_ id: String) async throws -> Response {
        guard let export = try await app.store.export(id) else { throw APIError.notFound("No workflow instance has ID \(id).", field: "id") }
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try export.jsonData()))
        )
    }

    /// 202 with `"cancelled": true` and the instance's status (running or compensating: it stops at
    /// its next step) when the request took effect; 409 with the `already_finished` error,
    /// `"cancelled": false` and the final status when the instance had already finished.
    func cancel(_ id: String) async throws -> Response {
        switch try await app.requestCancellation(of: id) {
        case .requested(let instance):
            return jsonResponse(
                ["instance_id": id, "cancel_requested": true, "cancelled": true, "status": instance.status.rawValue], status: .accepted
            )
        case .finished(let instance):
            let error = APIError(
                status: .conflict, type: APIError.snakeCase("\(EngineError.Code.alreadyFinished)"),
                message: "Instance \(id) has already \(instance.status); there is nothing to cancel, and nothing was changed."
            )
            return jsonResponse(
                ["error": error.document, "instance_id": id, "cancelled": false, "status": instance.status.rawValue], status: .conflict
            )
        case .notFound:
            throw EngineError(.instanceNotFound, "No workflow instance has ID \(id); nothing was cancelled.", instanceID: id)
        }
    }

    /// The keys a start's body takes.
    static let startKeys = [
        "input", "instance_id", "queue", "priority", "deduplication_id", "partition_key", "queue_timeout_ms", "timeout_ms", "run_timeout_ms",
    ]

    /// Starts an instance from an `application/json` body `{"input": [arguments…], "instance_id": "…"}`,
    /// on a queue the app registered with `"queue"` (and optionally `"priority"`, `"deduplication_id"`,
    /// `"partition_key"`, `"queue_timeout_ms"`), with the workflow's timeouts or those of `"timeout_ms"` and `"run_timeout_ms"`.
    /// Anything else is refused with the key or header at fault: another media type (415), an unknown
    /// key (400, naming the key expected), an input the workflow does not take (400, with the
    /// field the workflow's decoding or validation names, as `input.0.name`).
    func start(_ request: Request, name: String) async throws -> Response {
        let shape =
            #"{"input": [arguments…], "instance_id": "optional", "queue": "optional", "priority": 0, "deduplication_id": "optional", "#
            + #""partition_key": "optional", "queue_timeout_ms": 60000, "timeout_ms": 30000, "run_timeout_ms": 5000}"#
        let document = try await jsonObject(request, shape: shape)
        for key in document.keys.sorted() where !Self.startKeys.contains(key) {
            let nearest = Self.startKeys.min { Self.editDistance(key, $0) < Self.editDistance(key, $1) }
            let guess = nearest.flatMap { Self.editDistance(key, $0) <= 3 ? $0 : nil }
            throw APIError.badRequest(
                "Unknown key '\(key)' in the body\(guess.map { ": did you mean '\($0)'?" } ?? ".") The body takes 'input' (the workflow's arguments "
                    + "as a JSON array), and optionally 'instance_id', 'queue', 'priority', 'deduplication_id', 'partition_key', 'queue_timeout_ms', 'timeout_ms' "
                    + "and 'run_timeout_ms': \(shape).",
                type: "unknown_key", field: key
            )
        }
        let input = document["input"] ?? []
        guard input is [Any], let inputData = try? JSONSerialization.data(withJSONObject: input) else {
            throw APIError.badRequest(
                "'input' must be a JSON array: the workflow's arguments, one element per argument.", type: "invalid_body", field: "input"
            )
        }
        let instanceID = try Self.optionalString("instance_id", in: document, otherwise: "left out for a new UUID")
        let queue = try Self.optionalString("queue", in: document, otherwise: "left out to start on no queue")
        let dedup = try Self.optionalString("deduplication_id", in: document, otherwise: "left out")
        let partitionKey = try Self.optionalString("partition_key", in: document, otherwise: "left out")
        let priority = try Self.optionalWholeNumber("priority", in: document, otherwise: "(lower is admitted first), or left out for 0")
        let queueTimeout = try Self.optionalMilliseconds("queue_timeout_ms", in: document, otherwise: "left out to wait in the queue however long")
        let timeout = try Self.optionalMilliseconds("timeout_ms", in: document, otherwise: "left out for the workflow's own timeout")
        let runTimeout = try Self.optionalMilliseconds("run_timeout_ms", in: document, otherwise: "left out for the workflow's own run timeout")
        do {
            let id = try await app.start(
                workflowNamed: name, input: JSONPayload(data: inputData), instanceID: instanceID, queue: queue,
                priority: priority ?? 0, deduplicationID: dedup, partitionKey: partitionKey, queueTimeout: queueTimeout, timeout: timeout,
                runTimeout: runTimeout
            )
            return jsonResponse(["instance_id": id, "workflow_name": name], status: .created)
        } catch let error as EngineError where error.code == .invalidInput {
            throw APIError.badRequest(error.message, type: APIError.snakeCase("\(error.code)"), field: inputField(of: error, workflowName: name))
        } catch let error as EngineError where error.code == .invalidQueueOptions {
            let field = queue == nil ? "queue" : "partition_key"
            throw APIError.badRequest(error.message, type: APIError.snakeCase("\(error.code)"), field: field)
        } catch let error as EngineError where error.code == .unknownQueue {
            throw APIError.badRequest(error.message, type: APIError.snakeCase("\(error.code)"), field: "queue")
        } catch let error as EngineError where error.code == .unknownWorkflow {
            throw APIError(status: .notFound, type: APIError.snakeCase("\(error.code)"), message: error.message, field: "name")
        }
    }

    /// The string at `key` in a body, or `nil` when it is left out or `null`; anything else is refused.
    static func optionalString(_ key: String, in document: [String: Any], otherwise: String) throws -> String? {
        guard let value = document[key], !(value is NSNull) else { return nil }
        guard let string = value as? String else {
            throw APIError.badRequest("'\(key)' must be a string, or \(otherwise).", type: "invalid_body", field: key)
        }
        return string
    }

    /// The whole number at `key` in a body, or `nil` when it is left out or `null`; anything else
    /// (a fraction, a boolean, a string) is refused.
    static func optionalWholeNumber(_ key: String, in document: [String: Any], otherwise: String) throws -> Int? {
        guard let value = document[key], !(value is NSNull) else { return nil }
        // A JSON boolean is an NSNumber too (of type "c"); a fraction does not cast to Int.
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c", let whole = value as? Int else {
            throw APIError.badRequest("'\(key)' must be a whole number \(otherwise).", type: "invalid_body", field: key)
        }
        return whole
    }

    /// The duration in milliseconds at `key` in a body (a whole number above zero), or `nil` when it
    /// is left out or `null`; anything else is refused, naming the key.
    static func optionalMilliseconds(_ key: String, in document: [String: Any], otherwise: String) throws -> Duration? {
        guard let value = document[key], !(value is NSNull) else { return nil }
        guard let milliseconds = try? optionalWholeNumber(key, in: document, otherwise: otherwise), milliseconds > 0 else {
            throw APIError.badRequest(
                "'\(key)' must be a whole number of milliseconds above zero (30000 for 30 s), or \(otherwise).", type: "invalid_body", field: key
            )
        }
        return .milliseconds(milliseconds)
    }

    /// Where in the body a rejected input went wrong: the decoding error's coding path, or the
    /// field a ``ValidationError`` names (found in the input's shape), as `input.0.shipTo.zip`.
    func inputField(of error: EngineError, workflowName: String) -> String {
        let cause = error.cause
        if let decoding = cause as? DecodingError, let path = StartForm.codingPath(of: decoding) {
            return (["input"] + path.map { $0.intValue.map(String.init) ?? $0.stringValue }).joined(separator: ".")
        }
        if let validation = cause as? ValidationError, let field = validation.field {
            let shapes = app.inputShapes(ofWorkflowNamed: workflowName) ?? []
            guard let formPath = StartForm(shapes: shapes).path(named: field) else { return "input.\(field)" }
            // The form's path: `a0.shipTo.zip`, keys percent-escaped.
            let parts = formPath.split(separator: ".").map { String($0).removingPercentEncoding ?? String($0) }
            return (["input", String(parts[0].dropFirst())] + parts.dropFirst()).joined(separator: ".")
        }
        return "input"
    }

    /// `application/json`, with parameters (`; charset=utf-8`) or not, in any case.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        return contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    /// The Levenshtein distance, to suggest the key a typo meant.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let (x, y) = (Array(a), Array(b))
        guard !x.isEmpty, !y.isEmpty else { return max(x.count, y.count) }
        var previous = Array(0...y.count)
        for i in 1...x.count {
            var current = [i] + Array(repeating: 0, count: y.count)
            for j in 1...y.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[y.count]
    }

    // MARK: - Events

    /// The keys the body of `POST /api/instances/:id/events` takes.
    static let eventKeys = ["type", "data", "id"]

    /// The body as a JSON object: refused unless sent as `application/json` (415), within
    /// `maxBodyBytes` (413), and an object (400, showing `shape`).
    func jsonObject(_ request: Request, shape: String) async throws -> [String: Any] {
        guard Self.isJSON(request.headers[.contentType]) else {
            throw APIError(
                status: .unsupportedMediaType, type: "unsupported_media_type",
                message: "The body must be JSON, sent with 'Content-Type: application/json'"
                    + (request.headers[.contentType].map { ", not '\($0)'." } ?? "; the request has no Content-Type."),
                field: "Content-Type"
            )
        }
        let body = try await collectBody(request, upTo: maxBodyBytes)
        guard let document = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            throw APIError.badRequest("The body must be a JSON object: \(shape).", type: "invalid_body")
        }
        return document
    }

    /// Sends an event to one instance from an `application/json` body `{"type": "…", "data": <any
    /// JSON>, "id": "optional"}`: delivered now if the instance waits for the type, kept for it
    /// otherwise (``EddaApp/sendEvent(_:to:retention:)``). 202 with `delivered`; 404 for an unknown
    /// instance, 409 for a finished one, 400 naming the field at fault.
    func sendEvent(_ request: Request, id: String) async throws -> Response {
        let shape = #"{"type": "payment.completed", "data": {…}, "id": "optional"}"#
        let document = try await jsonObject(request, shape: shape)
        for key in document.keys.sorted() where !Self.eventKeys.contains(key) {
            throw APIError.badRequest("Unknown key '\(key)' in the body. It takes 'type', 'data' and 'id' (optional): \(shape).", type: "unknown_key", field: key)
        }
        let eventID = document["id"].flatMap { $0 is NSNull ? nil : $0 }
        if let eventID, !(eventID is String) {
            throw APIError.badRequest("'id' must be a string, or left out for a new UUID.", type: "invalid_body", field: "id")
        }
        let data = try document["data"].map { try JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed]) }
        let event = try EventForm.event(type: document["type"] as? String ?? "", data: data, id: eventID as? String)
        let delivered = try await EventForm.send(event, to: id, app: app)
        return jsonResponse(["instance_id": id, "id": event.id, "type": event.type, "delivered": delivered], status: .accepted)
    }

    func receiveEvent(_ request: Request) async throws -> Response {
        let body = try await collectBody(request, upTo: maxBodyBytes)
        let event = try CloudEventParser.parse(headers: request.headers, body: Data(body.readableBytesView))
        let receipt = try await app.ingest(event)
        let keptFor: Any = receipt.keptFor ?? NSNull()
        return jsonResponse(
            ["id": event.id, "delivered_to": receipt.deliveredTo, "kept_for": keptFor, "started": receipt.started],
            status: .accepted
        )
    }

    // MARK: - Documents

    static func document(of instance: WorkflowInstance) -> [String: Any] {
        [
            "instance_id": instance.instanceID,
            "workflow_name": instance.workflowName,
            "service_name": instance.serviceName,
            "status": instance.displayStatus.rawValue,
            "waiting_for": instance.waitingFor.map(WaitText.document) ?? NSNull(),
            "input": json(instance.input),
            "output": instance.output.map(json) ?? NSNull(),
            "error": instance.error.map(document(of:)) ?? NSNull(),
            "created_at": timestamp(instance.createdAt),
            "updated_at": timestamp(instance.updatedAt),
            "ready_at": instance.readyAt.map(timestamp) ?? NSNull(),
            "lease_owner": instance.leaseOwner ?? NSNull(),
            "cancel_requested": instance.cancelRequested,
            "parent_instance_id": instance.parentInstanceID ?? NSNull(),
            "run": instance.runNumber,
            "unreadable": instance.unreadable ?? NSNull(),
            "last_claimed_at": instance.lastClaimedAt.map(timestamp) ?? NSNull(),
            "queue": instance.queue ?? NSNull(),
            "priority": instance.priority,
            "partition_key": instance.partitionKey ?? NSNull(),
        ].merging(WaitText.deadlineDocument(of: instance)) { $1 }
    }

    static func document(of event: HistoryEvent) -> [String: Any] {
        [
            "sequence": event.sequence,
            "step_id": event.stepID,
            "position": event.position ?? NSNull(),
            "name": event.name,
            "kind": event.kind.rawValue,
            "payload": event.payload.map(json) ?? NSNull(),
            "error": event.error.map(document(of:)) ?? NSNull(),
            "retry": event.retry.flatMap { try? JSONPayload.encode($0) }.map(json) ?? NSNull(),
            "recorded_at": timestamp(event.recordedAt),
        ]
    }

    static func document(of error: ErrorRecord) -> Any {
        (try? JSONPayload.encode(error)).map(json) ?? ["type": error.type, "message": error.message]
    }

    /// A stored JSON payload as a JSONSerialization value (as text if it is not JSON, which the
    /// store does not allow but a hand-edited database might hold).
    static func json(_ payload: JSONPayload) -> Any {
        (try? JSONSerialization.jsonObject(with: payload.data, options: [.fragmentsAllowed])) ?? payload.json
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
