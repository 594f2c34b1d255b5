import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error of the API, rendered with its status as one JSON shape everywhere:
/// `{"error": {"type": "invalid_filter", "message": "…", "field": "limit"}}`.
///
/// `type` is a snake_case name a client can match on (as the API's keys are snake_case); `message`
/// says what went wrong and what to do; `field` names the part of the request at fault (a query
/// parameter, a path parameter, a body key as a dotted path such as `input.0.name`, or a header),
/// or is `null`.
struct APIError: Error {
    var status: HTTPResponse.Status
    var type: String
    var message: String
    var field: String?
    /// Extra headers of the answer (`Allow` for a 405, `Retry-After` for a 429).
    var headers: HTTPFields = [:]

    init(status: HTTPResponse.Status, type: String, message: String, field: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.type = type
        self.message = message
        self.field = field
        self.headers = headers
    }

    static func badRequest(_ message: String, type: String = "bad_request", field: String? = nil) -> APIError {
        APIError(status: .badRequest, type: type, message: message, field: field)
    }

    static func notFound(_ message: String, field: String? = nil) -> APIError {
        APIError(status: .notFound, type: "not_found", message: message, field: field)
    }

    static func invalidFilter(_ message: String, field: String) -> APIError {
        badRequest(message, type: "invalid_filter", field: field)
    }

    /// A 413 that states the limit, when it is known.
    static func payloadTooLarge(limit: Int?) -> APIError {
        let size = limit.map { "the \($0) bytes (\(ByteCountFormatter.string(fromByteCount: Int64($0), countStyle: .binary))) this server accepts" }
        return APIError(
            status: .contentTooLarge, type: "payload_too_large",
            message: "The request body is larger than \(size ?? "this server accepts"). Send less, or raise the server's maxBodyBytes."
        )
    }

    /// The error as its JSON document: `{"error": {"type", "message", "field"}}`.
    var document: [String: Any] {
        ["type": type, "message": message, "field": field ?? NSNull()]
    }

    var response: Response {
        var response = jsonResponse(["error": document], status: status)
        for header in headers { response.headers.append(header) }
        return response
    }

    /// `instanceNotFound` as `instance_not_found`, `duplicateStepID` as `duplicate_step_id`: the one
    /// naming style of the API's error types. A run of capitals is one word (an acronym), ending
    /// before a capital that starts a lowercase word (`HTTPServer`: `http_server`).
    static func snakeCase(_ name: String) -> String {
        let characters = Array(name)
        var result = ""
        for (index, character) in characters.enumerated() {
            let separates = character == "." || character == " " || character == "-"
            let previous = index > 0 ? characters[index - 1] : nil
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            let startsWord = character.isUppercase && (previous?.isUppercase != true || next?.isLowercase == true)
            if separates || startsWord, !result.isEmpty, result.last != "_" { result += "_" }
            if !separates { result += character.lowercased() }
        }
        return result
    }
}

/// Reads a request's body up to `limit` bytes; a larger one is a 413 that states the limit.
func collectBody(_ request: Request, upTo limit: Int) async throws -> ByteBuffer {
    do {
        return try await request.body.collect(upTo: limit)
    } catch is NIOTooManyBytesError {
        throw APIError.payloadTooLarge(limit: limit)
    }
}

/// Turns every error into an answer: under `/api/` the API's JSON error shape, on the viewer's
/// paths an HTML page in the viewer's layout saying the same (its status, its message, the `Allow`
/// or `Retry-After` header). The errors are the API's own, Edda's (by code), Hummingbird's (a 404 for
/// an unknown path), and anything else as a 500 that says only what kind of error it was.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Whether the server takes a token, so that error pages offer Sign out.
    var signsIn = false

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = Self.apiError(for: error, request: request)
            return Self.isAPI(request.uri.path) ? apiError.response : ViewerPages.errorPage(apiError, signsIn: signsIn)
        }
    }

    /// Whether a path is the JSON API's (and the CloudEvents ingress's): `/api` and below.
    static func isAPI(_ path: String) -> Bool {
        path == "/api" || path.hasPrefix("/api/")
    }

    /// The API's error for any error a route threw.
    static func apiError(for error: any Error, request: Request) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as EngineError:
            return APIError(status: status(of: error.code), type: APIError.snakeCase("\(error.code)"), message: error.message)
        case let error as ChannelModeError:
            return APIError(status: .conflict, type: "channel_mode_conflict", message: error.message)
        case let error as StoreError:
            return APIError(status: .serviceUnavailable, type: "store_" + APIError.snakeCase("\(error.code)"), message: error.message)
        case is NIOTooManyBytesError:
            return .payloadTooLarge(limit: nil)
        case let error as any HTTPResponseError where error.status == .notFound:
            guard isAPI(request.uri.path) else { return .notFound("There is no page at \(request.uri.path).") }
            return .notFound("Nothing is at \(request.method) \(request.uri.path): see the API's routes in the README.")
        case let error as any HTTPResponseError:
            let message = (error as? HTTPError)?.body ?? error.status.reasonPhrase
            return APIError(status: error.status, type: APIError.snakeCase(error.status.reasonPhrase), message: message)
        default:
            return APIError(status: .internalServerError, type: "internal_error", message: "The request failed: \(type(of: error)).")
        }
    }

    static func status(of code: EngineError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidInput, .encodingFailed, .invalidSchedule, .unknownQueue, .invalidQueueOptions, .stepNotFound: .badRequest
        case .unknownWorkflow, .instanceNotFound, .scheduleNotFound: .notFound
        case .instanceAlreadyExists, .alreadyFinished, .workflowNameTaken, .notFailed, .deduplicationIDInUse, .scheduleAlreadyExists, .forkRefused:
            .conflict
        default: .internalServerError
        }
    }
}
