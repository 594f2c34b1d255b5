import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error of the API, rendered as `{"error": {"type": …, "message": …}}` with its status.
struct APIError: Error {
    var status: HTTPResponse.Status
    var type: String
    var message: String

    static func badRequest(_ message: String, type: String = "BadRequest") -> APIError {
        APIError(status: .badRequest, type: type, message: message)
    }

    static func notFound(_ message: String) -> APIError {
        APIError(status: .notFound, type: "NotFound", message: message)
    }
}

/// Turns every error into a JSON body: the API's own, Edda's (by code), Hummingbird's (413 for a
/// body past the limit), and anything else as a 500 that says only what kind of error it was.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return Self.response(error)
        } catch let error as EngineError {
            return Self.response(APIError(status: Self.status(of: error.code), type: "EngineError.\(error.code)", message: error.message))
        } catch let error as ChannelModeError {
            return Self.response(APIError(status: .conflict, type: "ChannelModeError", message: error.message))
        } catch let error as StoreError {
            return Self.response(APIError(status: .serviceUnavailable, type: "StoreError.\(error.code)", message: error.message))
        } catch is NIOTooManyBytesError {
            return Self.response(APIError(status: .contentTooLarge, type: "PayloadTooLarge", message: "The request body is larger than the server accepts."))
        } catch let error as any HTTPResponseError {
            let type = error.status == .notFound ? "NotFound" : "HTTPError"
            return Self.response(APIError(status: error.status, type: type, message: error.status.reasonPhrase))
        } catch {
            return Self.response(APIError(status: .internalServerError, type: "InternalError", message: "The request failed: \(type(of: error))."))
        }
    }

    static func status(of code: EngineError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidInput, .encodingFailed: .badRequest
        case .unknownWorkflow, .instanceNotFound: .notFound
        case .instanceAlreadyExists, .alreadyFinished, .workflowNameTaken, .notFailed: .conflict
        default: .internalServerError
        }
    }

    static func response(_ error: APIError) -> Response {
        let document: [String: Any] = ["error": ["type": error.type, "message": error.message]]
        return jsonResponse(document, status: error.status)
    }
}

/// Refuses state-changing requests from other sites: a browser sends `Origin` with a cross-site
/// POST (a form on any page the operator visits could otherwise cancel everything on a local API),
/// and it must be exactly this server's origin (scheme, host and port). `Sec-Fetch-Site:
/// cross-site` is refused too. Requests without either header (curl, other services) pass: they
/// are not a browser acting for someone else.
struct SameOriginMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method != .get, request.method != .head {
            let authority = request.head.authority ?? ""
            if let origin = request.headers[.origin], origin != "http://\(authority)", origin != "https://\(authority)" {
                throw APIError(status: .forbidden, type: "CrossSiteRequest", message: "A request from another site (\(origin)) cannot change anything here.")
            }
            if request.headers[HTTPField.Name("Sec-Fetch-Site")!] == "cross-site" {
                throw APIError(status: .forbidden, type: "CrossSiteRequest", message: "A request from another site cannot change anything here.")
            }
        }
        return try await next(request, context)
    }
}

/// Refuses, with 401, every request that proves neither `Authorization: Bearer <token>` nor, from
/// a browser, the `edda_token` cookie the viewer's login page sets. Nothing is done for a refused
/// request. The API gets a JSON error; a page gets the login form (`POST /login` checks the token
/// and sets the cookie: `HttpOnly`, `SameSite=Strict`, so other sites' pages cannot use it).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/login", request.method == .post { return try await login(request) }
        if let given = request.headers[.authorization], Self.constantTimeEqual(given, "Bearer \(token)") {
            return try await next(request, context)
        }
        if let cookie = request.headers[.cookie].flatMap({ ViewerPages.cookie("edda_token", in: $0) }),
            Self.constantTimeEqual(cookie.removingPercentEncoding ?? "", token)
        {
            return try await next(request, context)
        }
        if path.hasPrefix("/api/") || request.method != .get {
            var response = JSONErrorMiddleware<Context>.response(
                APIError(status: .unauthorized, type: "Unauthorized", message: "A valid 'Authorization: Bearer <token>' header is required.")
            )
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        let next = path == "/login" ? "/" : request.uri.description
        return Self.loginPage(next: next, message: nil)
    }

    /// Checks the posted token; when it is right, sets the cookie and goes back to the page asked for.
    func login(_ request: Request) async throws -> Response {
        let form = ViewerPages.formFields(String(buffer: try await request.body.collect(upTo: 4096)))
        // Only a path of this server: never a redirect to another site.
        let target = form["next"].flatMap { $0.hasPrefix("/") && !$0.hasPrefix("//") && !$0.contains("\\") ? $0 : nil } ?? "/"
        guard let given = form["token"], Self.constantTimeEqual(given, token) else {
            return Self.loginPage(next: target, message: "That token is not right.")
        }
        let value = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token
        return Response(status: .seeOther, headers: [.location: target, .setCookie: "edda_token=\(value); Path=/; SameSite=Strict; HttpOnly"])
    }

    static func loginPage(next: String, message: String?) -> Response {
        var body = "<h1>Edda</h1><p>This viewer is protected by a token (the server's bearer token).</p>"
        if let message { body += "<p class=\"field-error\">\(HTML.escape(message))</p>" }
        body += "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"\(HTML.escape(next))\">"
        body += "<label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\"></label> <button type=\"submit\">Sign in</button></form>"
        var response = HTML.page(title: "Edda — sign in", body: body, status: .unauthorized)
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    /// Compares without stopping at the first difference, so timing does not reveal the token.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = x.count ^ y.count
        for index in 0..<max(x.count, y.count) {
            difference |= Int((index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0))
        }
        return difference == 0
    }
}

/// A JSON response from a `JSONSerialization` document (keys sorted).
func jsonResponse(_ document: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return Response(
        status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data))
    )
}
