import Edda
import Foundation

/// The JSON API as an OpenAPI 3.1 document, served at `GET /api/openapi.json`: every `/api/` route
/// with its parameters, request body, answers and the one error shape. Built here by hand from a
/// small description of each operation; a test compares its paths and methods with the routes the
/// router registers, so that the two cannot drift apart.
enum OpenAPIDocument {
    typealias Object = [String: Any]

    /// Every `type` an error of the API can have. The engine's and the store's codes in snake_case
    /// (the store's prefixed `store_`), and the API's own.
    static let errorTypes: [String] = [
        // The API's own.
        "bad_request", "invalid_filter", "invalid_body", "invalid_path", "unknown_key", "invalid_event", "invalid_json", "malformed_event",
        "not_found", "method_not_allowed", "unsupported_media_type", "payload_too_large", "unauthorized", "cross_site_request",
        "misdirected_request", "channel_mode_conflict", "internal_error",
        // The engine's codes.
        "invalid_input", "unknown_workflow", "instance_not_found", "instance_already_exists", "already_finished", "not_failed",
        "workflow_name_taken", "encoding_failed", "duplicate_step_id", "corrupt_history", "corrupt_input", "stopped", "no_transaction",
        "transaction_closed", "undecodable_message", "reserved_step_id", "concurrent_step_without_id", "concurrent_patch", "deduplication_id_in_use", "unknown_queue",
        "invalid_queue_options",
        "schedule_not_found", "schedule_already_exists", "invalid_schedule",
        // The store's codes.
        "store_database_in_use", "store_migration_failed", "store_database", "store_corrupt_record", "store_not_writable", "store_lease_lost",
        "store_not_an_edda_database", "store_schema_too_new",
    ]

    /// One operation: a method on a path (an OpenAPI path template, `{id}`).
    struct Operation {
        var method: String
        var path: String
        var id: String
        var summary: String
        var parameters: [Object] = []
        var body: Object?
        /// The success answer: its status, what it means, its schema.
        var success: (status: Int, description: String, schema: Object)
        /// The error answers (in the ``errorTypes`` shape): status and when.
        var errors: [(status: Int, description: String)] = []
        /// Answers of another shape than ``success`` and the error (a cancel's 409).
        var otherAnswers: [(status: Int, description: String, schema: Object)] = []
    }

    static var operations: [Operation] {
        [
            Operation(
                method: "get", path: "/api/instances", id: "listInstances", summary: "A page of instances, newest first, with counts per status.",
                parameters: filterParameters + [
                    query("limit", "How many, 1 to 1000 (default 50).", integer(minimum: 1, maximum: 1000)),
                    query("after", "The `next` cursor of the previous page.", string()),
                    query("before", "The `previous` cursor of the page after: pages back.", string()),
                ],
                success: (200, "The page.", ref("InstancePage")), errors: [(400, "A filter cannot be read (`invalid_filter`, its `field` named).")]
            ),
            Operation(
                method: "post", path: "/api/instances/cancel", id: "cancelMatching",
                summary: "Cancel every unfinished instance the filters match (at least one filter).", parameters: filterParameters,
                success: (202, "The IDs that took the request, and how many had finished meanwhile.", ref("BulkCancel")),
                errors: [(400, "No filter, or one that cannot be read (`invalid_filter`).")]
            ),
            Operation(
                method: "get", path: "/api/instances/{id}", id: "getInstance", summary: "One instance.", parameters: [idParameter],
                success: (200, "The instance.", ref("Instance")), errors: [(404, "No instance has this ID (`not_found`).")]
            ),
            Operation(
                method: "get", path: "/api/instances/{id}/history", id: "getHistory", summary: "An instance's history, paged by sequence number.",
                parameters: [
                    idParameter, query("after", "Records after this sequence number (default 0).", integer(minimum: 0)),
                    query("limit", "How many, 1 to 1000 (default 200).", integer(minimum: 1, maximum: 1000)),
                    query("failed", "`true`: failures only.", ["type": "string", "enum": ["true", "false"]]),
                ],
                success: (200, "A page of the history; `next` is the `after` of the next page, or null.", ref("HistoryPage")),
                errors: [(400, "`after` or `limit` cannot be read (`invalid_filter`)."), (404, "No instance has this ID (`not_found`).")]
            ),
            Operation(
                method: "get", path: "/api/instances/{id}/export", id: "exportHistory",
                summary: "An instance's whole history as one document (format `edda.history.v1`), as `edda export` prints it: "
                    + "for replaying it against changed code in a test (`Replayer` in EddaTesting).",
                parameters: [idParameter], success: (200, "The export.", ref("HistoryExport")),
                errors: [(404, "No instance has this ID (`not_found`)."), (500, "A record cannot be read (`store_corrupt_record`).")]
            ),
            Operation(
                method: "post", path: "/api/instances/{id}/cancel", id: "cancelInstance",
                summary: "Ask an instance to cancel: it stops at its next step.",
                parameters: [idParameter], success: (202, "The request took effect.", ref("Cancelled")),
                errors: [(404, "No instance has this ID (`instance_not_found`).")],
                otherAnswers: [(409, "It had already finished (`already_finished`): nothing was changed.", ref("NotCancelled"))]
            ),
            Operation(
                method: "post", path: "/api/instances/{id}/events", id: "sendEvent",
                summary: "Send an event to one instance: delivered now if it waits for the type, kept for it otherwise.", parameters: [idParameter],
                body: jsonBody(ref("EventToSend")), success: (202, "Delivered (`delivered`: true) or kept until it waits.", ref("EventSent")),
                errors: [
                    (
                        400,
                        "The body is not such an object (`invalid_body`), has an unknown key (`unknown_key`), a missing or reserved type "
                            + "(`invalid_event`)."
                    ),
                    (404, "No instance has this ID."), (409, "It has already finished (`already_finished`)."),
                    (413, "The body is past the server's limit (`payload_too_large`)."), (415, "Not `application/json` (`unsupported_media_type`)."),
                ]
            ),
            Operation(
                method: "post", path: "/api/instances/{id}/retry", id: "retryInstance",
                summary: "Run a failed instance again from its failed step, recorded in its history as retried by `api`.", parameters: [idParameter],
                success: (202, "Ready to run again.", ref("Retried")),
                errors: [(404, "No instance has this ID (`instance_not_found`)."), (409, "It has not failed (`not_failed`).")]
            ),
            Operation(
                method: "post", path: "/api/instances/{id}/fork", id: "forkInstance",
                summary: "Start a new instance from this one's history before a step, to run that step and what follows again; "
                    + "this one is not changed.",
                parameters: [idParameter], body: jsonBody(ref("ForkRequest")),
                success: (201, "Forked: what was copied, what runs again, and notes on what stays done.", ref("Forked")),
                errors: [
                    (400, "No such step in its history (`step_not_found`, the message lists some), or the body is not such an object."),
                    (404, "No instance has this ID (`instance_not_found`)."),
                    (409, "The new ID is taken (`instance_already_exists`), or a child started before the step had not reported (`fork_refused`)."),
                ]
            ),
            Operation(
                method: "get", path: "/api/workflows", id: "listWorkflows",
                summary: "The registered workflows, each argument's shape as JSON Schema.",
                success: (200, "The workflows.", ref("Workflows"))
            ),
            Operation(
                method: "get", path: "/api/queues", id: "listQueues",
                summary: "The queues declared in the store: limits as last declared, and how many of their instances are queued and running.",
                success: (200, "The queues, by name.", ref("Queues"))
            ),
            Operation(
                method: "get", path: "/api/versions", id: "listVersions",
                summary: "The application versions with unfinished instances, and how many: a version no longer listed needs no workers.",
                success: (200, "The versions, unversioned (null) first.", ref("Versions"))
            ),
            Operation(
                method: "post", path: "/api/workflows/{name}/instances", id: "startInstance",
                summary: "Start an instance; the input is decoded and validated as `app.start` does.",
                parameters: [path("name", "The workflow's registered name, percent-encoded as one path segment.")],
                body: jsonBody(ref("StartRequest")),
                success: (201, "Started.", ref("Started")),
                errors: [
                    (
                        400,
                        "The input is not the workflow's (`invalid_input`, `field` such as `input.0.name`), the queue is not registered "
                            + "(`unknown_queue`), the queue options do not fit it (`invalid_queue_options`), or the body is not such an object "
                            + "(`invalid_body`, `unknown_key`)."
                    ),
                    (404, "No workflow has this name here (`unknown_workflow`)."),
                    (409, "An instance has this ID (`instance_already_exists`), or the deduplication ID is held (`deduplication_id_in_use`)."),
                    (413, "The body is past the server's limit (`payload_too_large`)."), (415, "Not `application/json` (`unsupported_media_type`)."),
                ]
            ),
            Operation(
                method: "post", path: "/api/events", id: "ingestEvent",
                summary: "A CloudEvent: to every instance waiting for its type, or kept for the instance its `eddainstanceid` extension names.",
                parameters: ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time", "ce-eddainstanceid"].map {
                    header($0, "Binary mode: the event's attribute `\($0.dropFirst(3))` (`specversion`, `id`, `source` and `type` are required).")
                },
                body: [
                    "required": true,
                    "content": [
                        "application/cloudevents+json": ["schema": ref("CloudEvent")] as Object,
                        "*/*": ["schema": ["description": "Binary mode: the event's data, its attributes in `ce-` headers."] as Object] as Object,
                    ] as Object,
                ],
                success: (202, "Who got it, whom it is kept for, which instances it started.", ref("EventReceipt")),
                errors: [
                    (400, "A malformed event (`malformed_event`) or data the workflow it starts cannot take."),
                    (413, "The body is past the server's limit."),
                ]
            ),
            Operation(
                method: "get", path: "/api/openapi.json", id: "getOpenAPI", summary: "This document.",
                success: (200, "The API as OpenAPI 3.1.", ["type": "object"])
            ),
        ]
    }

    /// Answers every operation may give (the `Host` check, the token, another method, a failure).
    static let commonErrors: [(status: Int, description: String)] = [
        (401, "The server takes a bearer token and the request has no valid one (`unauthorized`)."),
        (403, "A state-changing request from another site (`cross_site_request`)."),
        (405, "Another method on this path (`method_not_allowed`; the `Allow` header names its methods)."),
        (421, "The `Host` is not one of the server's names (`misdirected_request`)."),
        (500, "The request failed (`internal_error`, or an engine code)."),
        (503, "The database failed (`store_…`)."),
    ]

    /// The document.
    static var document: Object {
        var paths: [String: Object] = [:]
        for operation in operations + scheduleOperations {
            var item = paths[operation.path] ?? [:]
            item[operation.method] = describe(operation)
            paths[operation.path] = item
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Edda JSON API", "version": "1",
                "description": """
                    List, inspect, start, cancel and retry workflow instances, send events, and take CloudEvents. Every error is \
                    `{"error": {"type", "message", "field"}}`: `type` is snake_case for matching, `message` says what went wrong and \
                    what to do, `field` names the part of the request at fault (a query or path parameter, a body key as a dotted \
                    path such as `input.0.name`, a header) or is null. `{id}` and `{name}` are one path segment each, percent-encoded.
                    """,
            ] as Object,
            "paths": paths,
            "components": ["schemas": schemas.merging(scheduleSchemas) { $1 }, "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"] as Object] as Object] as Object,
            // A server with a bearer token requires it on every route; one without takes none.
            "security": [Object(), ["bearer": [String]()] as Object],
        ]
    }

    static func describe(_ operation: Operation) -> Object {
        var responses: Object = [
            String(operation.success.status): ["description": operation.success.description, "content": json(operation.success.schema)] as Object
        ]
        for answer in operation.otherAnswers {
            responses[String(answer.status)] = ["description": answer.description, "content": json(answer.schema)] as Object
        }
        for error in operation.errors + commonErrors where responses[String(error.status)] == nil {
            responses[String(error.status)] = ["description": error.description, "content": json(ref("Error"))] as Object
        }
        var described: Object = ["operationId": operation.id, "summary": operation.summary, "responses": responses]
        if !operation.parameters.isEmpty { described["parameters"] = operation.parameters }
        if let body = operation.body { described["requestBody"] = body }
        return described
    }

    // MARK: - Parameters and bodies

    /// The list's filters, which the bulk cancel takes too.
    static var filterParameters: [Object] {
        [
            query(
                "status", "Only this status (`waiting`: running instances parked on a wait).",
                ["type": "string", "enum": InstanceStatus.all.map(\.rawValue)]
            ),
            query("workflow", "Only instances of this workflow.", string()),
            query("parent", "Only the children of this instance.", string()),
            query("queue", "Only instances started on this queue.", string()),
            query("version", "Only instances of this application version (`app_version`).", string()),
            query("input_key", "A key or dotted path in an argument object; with `input_value`.", string()),
            query("input_value", "The value `input_key` must have.", string()),
            query("created_from", "Created at or after: a day (2026-11-25) or an ISO 8601 time (UTC without a zone).", string()),
            query("created_before", "Created before: a day or an ISO 8601 time.", string()),
        ]
    }

    static var idParameter: Object { path("id", "The instance ID, percent-encoded as one path segment (`parent%2Fedda.child%3A1`).") }

    static func query(_ name: String, _ description: String, _ schema: Object) -> Object {
        ["name": name, "in": "query", "required": false, "description": description, "schema": schema]
    }

    static func path(_ name: String, _ description: String) -> Object {
        ["name": name, "in": "path", "required": true, "description": description, "schema": string()]
    }

    static func header(_ name: String, _ description: String) -> Object {
        ["name": name, "in": "header", "required": false, "description": description, "schema": string()]
    }

    static func jsonBody(_ schema: Object) -> Object {
        ["required": true, "content": json(schema)]
    }

    static func json(_ schema: Object) -> Object {
        ["application/json": ["schema": schema] as Object]
    }

    // MARK: - Schemas

    static func ref(_ name: String) -> Object { ["$ref": "#/components/schemas/\(name)"] }
    static func string() -> Object { ["type": "string"] }
    static func nullable(_ type: String) -> Object { ["type": [type, "null"]] }
    static func integer(minimum: Int, maximum: Int? = nil) -> Object {
        var schema: Object = ["type": "integer", "minimum": minimum]
        schema["maximum"] = maximum
        return schema
    }
    static func array(_ items: Object) -> Object { ["type": "array", "items": items] }
    static var time: Object { ["type": "string", "format": "date-time"] }
    static var anyValue: Object { ["description": "Any JSON value: a stored payload as the workflow encoded it."] }

    /// An object whose every property is required (null where the schema allows it).
    static func object(_ properties: Object, optional: Set<String> = []) -> Object {
        ["type": "object", "required": properties.keys.filter { !optional.contains($0) }.sorted(), "properties": properties]
    }

    static var schemas: Object {
        [
            "Error": object([
                "error": object([
                    "type": ["type": "string", "description": "snake_case, for matching.", "examples": errorTypes] as Object,
                    "message": string(), "field": nullable("string"),
                ])
            ]),
            "Instance": object([
                "instance_id": string(), "workflow_name": string(), "service_name": string(),
                "status": ["type": "string", "enum": InstanceStatus.all.map(\.rawValue)] as Object,
                "waiting_for": ["oneOf": [ref("WaitingFor"), ["type": "null"] as Object]] as Object,
                "input": array(anyValue), "output": anyValue, "error": ["oneOf": [ref("ErrorRecord"), ["type": "null"] as Object]] as Object,
                "created_at": time, "updated_at": time, "ready_at": ["type": ["string", "null"], "format": "date-time"] as Object,
                "last_claimed_at": ["type": ["string", "null"], "format": "date-time"] as Object,
                "lease_owner": nullable("string"), "cancel_requested": ["type": "boolean"] as Object, "parent_instance_id": nullable("string"),
                "run": ["type": "integer"] as Object, "unreadable": nullable("string"),
                "deadline": ["type": ["string", "null"], "format": "date-time", "description": "When it is cancelled unless finished: the earlier of its workflow and run deadlines (the database's clock)."] as Object,
                "workflow_deadline": ["type": ["string", "null"], "format": "date-time"] as Object,
                "workflow_timeout_ms": nullable("integer"), "run_timeout_ms": nullable("integer"),
                "queue_deadline": [
                    "type": ["string", "null"], "format": "date-time",
                    "description": "While queued: when it leaves the line unadmitted and is cancelled (its queue timeout).",
                ] as Object,
                "queue_timeout_ms": nullable("integer"),
                "cancellation_reason": nullable("string"),
                "app_version": [
                    "type": ["string", "null"],
                    "description": "The application version of the app that started it; null: unversioned. Only workers of this version (or that declare it compatible) and unversioned workers run it.",
                ] as Object,
                "queue": nullable("string"), "priority": ["type": "integer"] as Object, "partition_key": nullable("string"),
                "queue_position": ["type": "integer", "description": "Only on one instance that is queued: 1 is next in line."] as Object,
            ], optional: ["queue_position"]),
            "Queues": object([
                "queues": array(
                    object([
                        "name": string(), "concurrency": nullable("integer"), "worker_concurrency": nullable("integer"),
                        "partitioned": ["type": "boolean"] as Object,
                        "rate_limit": [
                            "oneOf": [object(["limit": ["type": "integer"] as Object, "period_seconds": ["type": "number"] as Object]), ["type": "null"] as Object]
                        ] as Object,
                        "queued": ["type": "integer"] as Object, "running": ["type": "integer"] as Object, "declared_at": time,
                    ])
                )
            ]),
            "Versions": object([
                "versions": array(
                    object([
                        "version": nullable("string"), "unfinished": ["type": "integer"] as Object, "queued": ["type": "integer"] as Object,
                        "oldest_created_at": time,
                    ])
                )
            ]),
            "DeadlineExceeded": [
                "type": "object", "required": ["kind", "deadline_ms"],
                "properties": [
                    "kind": ["type": "string", "enum": ["workflow_timeout", "run_timeout", "inherited"]] as Object,
                    "timeout_ms": ["type": "integer"] as Object, "deadline_ms": ["type": "integer"] as Object, "parent_instance_id": string(),
                ] as Object,
                "description": "The deadline that cancelled an instance: which one, its timeout (absent when inherited), when it passed (milliseconds since 1970).",
            ] as Object,
            "WaitingFor": object([
                "kind": ["type": "string", "enum": ["event", "channel", "child", "timer", "retry"]] as Object,
                "awaited": nullable("string"), "step_id": nullable("string"),
                "deadline": ["type": ["string", "null"], "format": "date-time"] as Object,
                "since": ["type": ["string", "null"], "format": "date-time"] as Object,
                "timeout_seconds": nullable("number"), "attempt": nullable("integer"),
            ]),
            "ErrorRecord": [
                "type": "object", "required": ["type", "message"],
                "properties": [
                    "type": string(), "message": string(),
                    "deadline_exceeded": ["oneOf": [ref("DeadlineExceeded"), ["type": "null"] as Object]] as Object,
                ] as Object,
                "description": "A recorded failure: its error type and message, and what else the engine recorded.",
            ] as Object,
            "InstancePage": object([
                "instances": array(ref("Instance")),
                "counts": [
                    "type": "object", "description": "How many instances per status, for the other filters.",
                    "additionalProperties": ["type": "integer"] as Object,
                ] as Object,
                "next": nullable("string"), "previous": nullable("string"),
            ]),
            "HistoryRecord": object([
                "sequence": ["type": "integer"] as Object, "step_id": string(), "position": nullable("integer"), "name": string(), "kind": string(),
                "payload": anyValue, "error": ["oneOf": [ref("ErrorRecord"), ["type": "null"] as Object]] as Object,
                "retry": ["description": "The attempts of a retried step, or null."] as Object, "recorded_at": time,
            ]),
            "HistoryPage": object(["history": array(ref("HistoryRecord")), "next": nullable("string")]),
            "HistoryExport": object([
                "format": ["const": "edda.history.v1"] as Object, "instance_id": string(), "workflow_name": string(), "service_name": string(),
                "run": ["type": "integer"] as Object, "status": string(),
                "input": ["type": "array", "description": "The workflow's arguments."] as Object, "output": anyValue,
                "error": ["oneOf": [ref("ErrorRecord"), ["type": "null"] as Object]] as Object, "created_at": time, "updated_at": time,
                "history": array(ref("HistoryRecord")),
            ]),
            "BulkCancel": object(["cancelled": array(string()), "already_finished": ["type": "integer"] as Object]),
            "Cancelled": object([
                "instance_id": string(), "cancel_requested": ["const": true] as Object, "cancelled": ["const": true] as Object, "status": string(),
            ]),
            "NotCancelled": object([
                "error": ref("Error").merging(["description": "The `already_finished` error (its `error` member)."]) { $1 },
                "instance_id": string(), "cancelled": ["const": false] as Object, "status": string(),
            ]),
            "EventToSend": [
                "type": "object", "required": ["type"], "additionalProperties": false,
                "properties": [
                    "type": ["type": "string", "description": "Not empty, not starting with `edda.`."] as Object, "data": anyValue,
                    "id": ["type": ["string", "null"], "description": "A new UUID when left out."] as Object,
                ] as Object,
            ] as Object,
            "EventSent": object(["instance_id": string(), "id": string(), "type": string(), "delivered": ["type": "boolean"] as Object]),
            "ForkRequest": object(["from_step": string(), "instance_id": nullable("string")], optional: ["instance_id"]),
            "Forked": object([
                "instance_id": string(), "forked_from": string(), "from_step": string(), "copied_records": ["type": "integer"] as Object,
                "rerun_steps": array(string()), "notes": array(string()),
            ]),
            "Retried": object([
                "instance_id": string(), "retried_step": nullable("string"), "requested_by": string(),
                "served_here": ["type": "boolean", "description": "Whether this server's app registers the workflow."] as Object,
            ]),
            "Workflows": object([
                "workflows": array(object(["name": string(), "arguments": array(["description": "An argument's shape as JSON Schema."] as Object)]))
            ]),
            "StartRequest": [
                "type": "object", "additionalProperties": false,
                "properties": [
                    "input": array(anyValue).merging(["description": "The workflow's arguments, one element per argument (default [])."]) { $1 },
                    "instance_id": ["type": ["string", "null"], "description": "A new UUID when left out."] as Object,
                    "queue": ["type": ["string", "null"], "description": "A queue the app registered: the instance waits `queued` for room."] as Object,
                    "priority": ["type": ["integer", "null"], "description": "On the queue: lower is admitted first (default 0)."] as Object,
                    "deduplication_id": [
                        "type": ["string", "null"], "description": "On the queue: refused (409) while another queued or running instance holds it.",
                    ] as Object,
                    "partition_key": [
                        "type": ["string", "null"], "description": "On a partitioned queue (required there): the partition whose limits it counts against.",
                    ] as Object,
                    "queue_timeout_ms": [
                        "type": ["integer", "null"], "minimum": 1,
                        "description": "On the queue: cancelled if still queued this many milliseconds from now (reason queue_timeout).",
                    ] as Object,
                    "timeout_ms": [
                        "type": ["integer", "null"], "minimum": 1,
                        "description": "The workflow timeout in milliseconds, from now (queued time included); the workflow's own when left out.",
                    ] as Object,
                    "run_timeout_ms": [
                        "type": ["integer", "null"], "minimum": 1,
                        "description": "The timeout of each run in milliseconds; the workflow's own when left out.",
                    ] as Object,
                ] as Object,
            ] as Object,
            "Started": object(["instance_id": string(), "workflow_name": string()]),
            "CloudEvent": [
                "type": "object", "required": ["specversion", "id", "source", "type"],
                "properties": [
                    "specversion": ["const": "1.0"] as Object, "id": string(), "source": string(), "type": string(), "subject": string(),
                    "time": time, "datacontenttype": string(), "data": anyValue, "data_base64": string(), "eddainstanceid": string(),
                ] as Object,
            ] as Object,
            "EventReceipt": object([
                "id": string(), "delivered_to": array(string()), "kept_for": nullable("string"), "started": array(string()),
            ]),
        ]
    }
}
