import Edda
import Foundation
import HTTPTypes

/// Sending an event to one instance, from the instance page's form or from
/// `POST /api/instances/:id/events`: the event built from a type and JSON data, checked with
/// errors that name the field at fault (`type`, `data`, `id`), and sent with
/// ``EddaApp/sendEvent(_:to:retention:)``.
enum EventForm {
    /// The `source` of the events the viewer and the API send.
    static let source = "edda-viewer"

    /// The event of `type` carrying `data` (JSON, or none).
    ///
    /// - Throws: ``APIError`` (400, `invalid_event`) naming `type` when it is empty or reserved.
    static func event(type: String, data: Data?, id: String?) throws -> CloudEvent {
        let type = type.trimmingCharacters(in: .whitespaces)
        guard !type.isEmpty else {
            throw APIError.badRequest("Give the event's type: the type the instance waits for, such as payment.completed.", type: "invalid_event", field: "type")
        }
        guard !type.hasPrefix("edda.") else {
            throw APIError.badRequest(
                "'\(type)': event types starting with 'edda.' are reserved for Edda (a child's report is one). Nothing was sent.",
                type: "invalid_event", field: "type"
            )
        }
        return CloudEvent(id: id ?? UUID().uuidString, type: type, source: source, data: data, dataContentType: data == nil ? nil : "application/json")
    }

    /// The form's data field as JSON: `nil` when it is empty (an event without data).
    ///
    /// - Throws: ``APIError`` (400, `invalid_json`) naming `data`, with what the parser found.
    static func data(_ text: String) throws -> Data? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        let data = Data(trimmed.utf8)
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw APIError.badRequest(
                "The data is not valid JSON\(detail.map { " (\($0))" } ?? ""): give a JSON value, such as {\"amount\": 42} or \"text\" in quotes, "
                    + "or leave it empty. Nothing was sent.",
                type: "invalid_json", field: "data"
            )
        }
        return data
    }

    /// Sends `event` to instance `id`: whether it was waiting and took it now (otherwise the event
    /// is kept until it waits for the type).
    ///
    /// - Throws: ``APIError``: 404 naming `id` for an unknown instance, 409 for a finished one.
    static func send(_ event: CloudEvent, to id: String, app: EddaApp) async throws -> Bool {
        do {
            return try await app.sendEvent(event, to: id)
        } catch let error as EngineError where error.code == .instanceNotFound {
            throw APIError.notFound("No workflow instance has ID \(id); the event was not sent.", field: "id")
        } catch let error as EngineError where error.code == .alreadyFinished {
            throw APIError(status: .conflict, type: "already_finished", message: error.message, field: "id")
        } catch let error as EngineError where error.code == .invalidInput {
            throw APIError.badRequest(error.message, type: "invalid_event", field: "type")
        }
    }
}
