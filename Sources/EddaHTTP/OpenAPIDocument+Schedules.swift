import Edda
import Foundation

/// The schedule routes in the OpenAPI document.
extension OpenAPIDocument {
    static var nameParameter: Object { path("name", "The schedule's name, percent-encoded as one path segment.") }

    static var scheduleOperations: [Operation] {
        let notFound = (404, "No schedule has this name (`schedule_not_found`).")
        return [
            Operation(
                method: "get", path: "/api/schedules", id: "listSchedules", summary: "Every schedule, by name, with its next ticks.",
                success: (200, "The schedules.", object(["schedules": array(ref("Schedule"))]))
            ),
            Operation(
                method: "post", path: "/api/schedules", id: "createSchedule",
                summary: "Create a schedule: a worker that registers its workflow starts its ticks.", body: jsonBody(ref("ScheduleToCreate")),
                success: (201, "Created.", ref("Schedule")),
                errors: [
                    (
                        400,
                        "A key is missing or cannot be read (`invalid_body`, `unknown_key`, `invalid_schedule`, `invalid_input`), or the queue "
                            + "is unknown or partitioned (`unknown_queue`, `invalid_queue_options`)."
                    ),
                    (409, "A schedule has this name (`schedule_already_exists`)."), (415, "Not `application/json` (`unsupported_media_type`)."),
                ]
            ),
            Operation(
                method: "get", path: "/api/schedules/{name}", id: "getSchedule", summary: "One schedule.", parameters: [nameParameter],
                success: (200, "The schedule.", ref("Schedule")), errors: [notFound]
            ),
            Operation(
                method: "delete", path: "/api/schedules/{name}", id: "deleteSchedule",
                summary: "Delete a schedule; the instances it started are kept.", parameters: [nameParameter],
                success: (200, "Deleted.", object(["deleted": string()])), errors: [notFound]
            ),
            Operation(
                method: "post", path: "/api/schedules/{name}/pause", id: "pauseSchedule", summary: "Pause a schedule: no tick starts until resumed.",
                parameters: [nameParameter], success: (200, "The schedule, paused.", ref("Schedule")), errors: [notFound]
            ),
            Operation(
                method: "post", path: "/api/schedules/{name}/resume", id: "resumeSchedule",
                summary: "Resume a schedule from now on (ticks missed while paused do not start).", parameters: [nameParameter],
                success: (200, "The schedule, running.", ref("Schedule")), errors: [notFound]
            ),
            Operation(
                method: "post", path: "/api/schedules/{name}/trigger", id: "triggerSchedule",
                summary: "Start the schedule's workflow now, whatever its spec, policy or pause.", parameters: [nameParameter],
                success: (202, "Asked for: a worker's next pass starts it.", ref("TicksRequested")), errors: [notFound]
            ),
            Operation(
                method: "post", path: "/api/schedules/{name}/backfill", id: "backfillSchedule",
                summary: "Start the schedule's ticks in a range (at most 1000; ticks already started are not started again).",
                parameters: [nameParameter],
                body: jsonBody(object(["from": time, "through": time])),
                success: (202, "Asked for: the ticks' instance IDs.", ref("TicksRequested")),
                errors: [(400, "A time cannot be read, or the range is backwards or too long (`invalid_body`, `invalid_schedule`)."), notFound]
            ),
        ]
    }

    static var scheduleSchemas: Object {
        let times = array(time)
        let overlap: Object = ["type": "string", "enum": Schedule.OverlapPolicy.allCases.map(\.rawValue)]
        return [
            "Schedule": object([
                "name": string(), "workflow_name": string(),
                "spec": ["type": "string", "description": "A cron expression (5 or 6 fields) or `@every <n>s`."] as Object,
                "time_zone": string(),
                "input": ["description": "The stored arguments (an array), or null when built from each tick in code."] as Object,
                "overlap": overlap, "catch_up_window_seconds": ["type": "number"] as Object,
                "queue": ["type": ["string", "null"], "description": "The queue each tick's instance starts on, or null for none."] as Object,
                "priority": ["type": "integer", "description": "On the queue: lower is admitted first."] as Object,
                "paused": ["type": "boolean"] as Object,
                "next_ticks": times, "last_tick": ["type": ["string", "null"], "format": "date-time"] as Object,
                "last_instance_id": nullable("string"), "buffered_ticks": times, "requested_ticks": times, "updated_at": time,
            ]),
            "ScheduleToCreate": [
                "type": "object", "required": ["name", "workflow_name", "spec"], "additionalProperties": false,
                "properties": [
                    "name": string(), "workflow_name": string(),
                    "spec": ["type": "string", "description": "A cron expression (5 or 6 fields) or `@every 15m`."] as Object,
                    "time_zone": ["type": "string", "description": "An IANA time zone (default UTC)."] as Object,
                    "input": array(anyValue).merging(["description": "The workflow's arguments (default [])."]) { $1 },
                    "overlap": overlap, "catch_up_window_seconds": ["type": "number", "minimum": 0] as Object,
                    "queue": [
                        "type": ["string", "null"],
                        "description": "A queue the app registers or the store declares (not partitioned): each tick waits `queued` there.",
                    ] as Object,
                    "priority": ["type": ["integer", "null"], "description": "On the queue: lower is admitted first (default 0)."] as Object,
                ] as Object,
            ] as Object,
            "TicksRequested": object(["schedule": string(), "instance_ids": array(string())]),
        ]
    }
}
