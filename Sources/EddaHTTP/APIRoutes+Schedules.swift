import Edda
import Foundation
import HTTPTypes
import Hummingbird

/// The JSON API's schedule routes: list, read, create, delete, pause, resume, trigger, backfill.
extension APIRoutes {
    func registerSchedules<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        routes.on("/api/schedules", .get) { _, _ in
            jsonResponse(["schedules": try await app.schedules().map(ScheduleDocument.document)])
        }
        routes.on("/api/schedules", .post) { request, _ in try await createSchedule(request) }
        routes.on("/api/schedules/:name", .get) { _, context in
            let name = try context.parameters.decoded("name")
            guard let schedule = try await app.schedule(named: name) else { throw EddaClient.noSchedule(name) }
            return jsonResponse(ScheduleDocument.document(schedule))
        }
        routes.on("/api/schedules/:name", .delete) { _, context in
            let name = try context.parameters.decoded("name")
            try await app.deleteSchedule(name)
            return jsonResponse(["deleted": name])
        }
        routes.on("/api/schedules/:name/pause", .post) { _, context in
            jsonResponse(ScheduleDocument.document(try await app.pauseSchedule(try context.parameters.decoded("name"))))
        }
        routes.on("/api/schedules/:name/resume", .post) { _, context in
            jsonResponse(ScheduleDocument.document(try await app.resumeSchedule(try context.parameters.decoded("name"))))
        }
        routes.on("/api/schedules/:name/trigger", .post) { _, context in
            let name = try context.parameters.decoded("name")
            return jsonResponse(["schedule": name, "instance_ids": [try await app.triggerSchedule(name)]], status: .accepted)
        }
        routes.on("/api/schedules/:name/backfill", .post) { request, context in
            let name = try context.parameters.decoded("name")
            let shape = #"{"from": "2026-03-01T00:00:00Z", "through": "2026-03-02T00:00:00Z"}"#
            let document = try await jsonObject(request, shape: shape)
            let (from, through) = (try Self.time(document, "from", shape: shape), try Self.time(document, "through", shape: shape))
            return jsonResponse(
                ["schedule": name, "instance_ids": try await app.backfillSchedule(name, from: from, through: through)], status: .accepted)
        }
    }

    /// The keys the body of `POST /api/schedules` takes.
    static let scheduleKeys = ["name", "workflow_name", "spec", "time_zone", "input", "overlap", "catch_up_window_seconds", "queue", "priority"]

    /// Creates a schedule from `{"name", "workflow_name", "spec", "time_zone"?, "input"?, "overlap"?,
    /// "catch_up_window_seconds"?, "queue"?, "priority"?}`: 201 with the schedule; 400 naming the key
    /// at fault (an unknown or partitioned queue names `queue`); 409 when the name is taken.
    func createSchedule(_ request: Request) async throws -> Response {
        let shape =
            #"{"name": "nightly", "workflow_name": "report", "spec": "0 2 * * *", "time_zone": "Europe/Paris", "input": [], "overlap": "skip", "#
            + #""queue": "reports"}"#
        let document = try await jsonObject(request, shape: shape)
        for key in document.keys.sorted() where !Self.scheduleKeys.contains(key) {
            throw APIError.badRequest(
                "Unknown key '\(key)' in the body. It takes \(Self.scheduleKeys.joined(separator: ", ")): \(shape).", type: "unknown_key", field: key)
        }
        func text(_ key: String, default value: String? = nil) throws -> String {
            guard let found = document[key] as? String ?? value, !found.isEmpty else {
                throw APIError.badRequest("'\(key)' must be a non-empty string: \(shape).", type: "invalid_body", field: key)
            }
            return found
        }
        let spec: ScheduleSpec
        do {
            spec = try ScheduleSpec(expression: try text("spec"), timeZone: try text("time_zone", default: "UTC"))
        } catch let error as ScheduleSpecError {
            throw APIError.badRequest(error.description, type: "invalid_schedule", field: "spec")
        }
        guard let overlap = Schedule.OverlapPolicy(rawValue: try text("overlap", default: "skip")) else {
            let policies = Schedule.OverlapPolicy.allCases.map(\.rawValue).joined(separator: ", ")
            throw APIError.badRequest("'overlap' must be one of \(policies).", type: "invalid_body", field: "overlap")
        }
        let window = document["catch_up_window_seconds"].map { $0 as? Double ?? -1 } ?? Schedule.defaultCatchUpWindow.seconds
        guard window >= 0 else {
            throw APIError.badRequest(
                "'catch_up_window_seconds' must be a number of seconds, 0 or more.", type: "invalid_body", field: "catch_up_window_seconds")
        }
        let input = document["input"] ?? []
        guard input is [Any], let inputData = try? JSONSerialization.data(withJSONObject: input) else {
            throw APIError.badRequest(
                "'input' must be a JSON array: the workflow's arguments, one element per argument.", type: "invalid_body", field: "input")
        }
        let queue = try Self.optionalString("queue", in: document, otherwise: "left out to start each tick on no queue")
        let priority = try Self.optionalWholeNumber("priority", in: document, otherwise: "(lower is admitted first), or left out for 0")
        let workflow = try text("workflow_name")
        do {
            let created = try await app.createSchedule(
                try text("name"), workflowNamed: workflow, spec: spec, input: JSONPayload(data: inputData), overlap: overlap,
                catchUpWindow: .milliseconds(Int64(window * 1000)), queue: queue, priority: priority ?? 0
            )
            return jsonResponse(ScheduleDocument.document(created), status: .created)
        } catch let error as EngineError where error.code == .invalidInput {
            throw APIError.badRequest(error.message, type: APIError.snakeCase("\(error.code)"), field: inputField(of: error, workflowName: workflow))
        } catch let error as EngineError where error.code == .unknownQueue || error.code == .invalidQueueOptions {
            throw APIError.badRequest(error.message, type: APIError.snakeCase("\(error.code)"), field: "queue")
        }
    }

    /// An ISO 8601 time of the body, or a 400 naming its key.
    static func time(_ document: [String: Any], _ key: String, shape: String) throws -> Date {
        guard let text = document[key] as? String, let date = try? Date(text, strategy: .iso8601) else {
            throw APIError.badRequest("'\(key)' must be an ISO 8601 time: \(shape).", type: "invalid_body", field: key)
        }
        return date
    }
}
