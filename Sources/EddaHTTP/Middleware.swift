import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

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
                throw APIError(
                    status: .forbidden, type: "cross_site_request", message: "A request from another site (\(origin)) cannot change anything here.",
                    field: "Origin"
                )
            }
            if request.headers[HTTPField.Name("Sec-Fetch-Site")!] == "cross-site" {
                throw APIError(
                    status: .forbidden, type: "cross_site_request", message: "A request from another site cannot change anything here.",
                    field: "Sec-Fetch-Site"
                )
            }
        }
        return try await next(request, context)
    }
}

/// Refuses, with 401, every request that proves neither `Authorization: Bearer <token>` (the scheme
/// in any case) nor, for the viewer's pages, a session the sign-in page opened. Nothing is done for
/// a refused request. The API gets a JSON error; a page gets the sign-in form (`POST /login` checks
/// the token and sets an `edda_session` cookie: a random ID, `HttpOnly`, `SameSite=Strict`, good
/// for 12 hours or until the server restarts — never the token itself, and never accepted by the
/// API). Wrong tokens are throttled per client (``LoginThrottle``: 429 with `Retry-After`);
/// `POST /logout` closes the session and clears the cookie.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    let sessions: ViewerSessions
    let throttle: LoginThrottle

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let isAPI = path.hasPrefix("/api/")
        if path == "/login", request.method == .post { return try await login(request, client: Self.client(of: context)) }
        if path == "/logout", request.method == .post { return logout(request) }
        if let given = request.headers[.authorization], Self.isBearer(given, token: token) {
            return try await next(request, context)
        }
        if !isAPI, let session = Self.session(of: request), sessions.isOpen(session) {
            return try await next(request, context)
        }
        if !isAPI, request.method != .get, request.method != .head {
            // A form posted without a session (it ended, or the server restarted): the sign-in page, not JSON.
            return Self.loginPage(next: "/", message: "Nothing was done: sign in first (your session has ended, or you have not signed in), then do it again.")
        }
        if isAPI || request.method != .get {
            return APIError(
                status: .unauthorized, type: "unauthorized", message: "A valid 'Authorization: Bearer <token>' header is required.",
                field: "Authorization", headers: [.wwwAuthenticate: "Bearer"]
            ).response
        }
        return Self.loginPage(next: path == "/login" ? "/" : request.uri.description, message: nil)
    }

    /// Whether an `Authorization` header carries `token` in the `Bearer` scheme, whose name is
    /// case-insensitive (RFC 9110 §11.1).
    static func isBearer(_ header: String, token: String) -> Bool {
        let parts = header.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        return constantTimeEqual(parts[1].trimmingCharacters(in: .whitespaces), token)
    }

    /// The client's address, when the request context knows it (``EddaHTTP/server(logger:onListening:)``'s does).
    static func client(of context: Context) -> String {
        (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress ?? "unknown client"
    }

    static func session(of request: Request) -> String? {
        request.headers[.cookie].flatMap { ViewerPages.cookie("edda_session", in: $0) }
    }

    /// Checks the posted token; when it is right, opens a session and goes back to the page asked
    /// for. A client that has got it wrong too often is told to wait (429), whatever it sends.
    func login(_ request: Request, client: String) async throws -> Response {
        let form = ViewerPages.formFields(String(buffer: try await collectBody(request, upTo: 4096)))
        let target = form["next"].flatMap(Self.localPath) ?? "/"
        if let seconds = throttle.wait(for: client) {
            var response = Self.loginPage(
                next: target, message: "Too many wrong tokens from here: try again in \(seconds) s.", status: .tooManyRequests
            )
            response.headers[.retryAfter] = String(seconds)
            return response
        }
        guard let given = form["token"], Self.constantTimeEqual(given, token) else {
            throttle.recordFailure(of: client)
            return Self.loginPage(next: target, message: "That token is not right.")
        }
        throttle.recordSuccess(of: client)
        let session = sessions.open()
        return Response(
            status: .seeOther,
            headers: [.location: target, .setCookie: "edda_session=\(session); Path=/; SameSite=Strict; HttpOnly; Max-Age=\(Int(ViewerSessions.lifetime))"]
        )
    }

    /// Closes the browser's session (so its cookie is worthless even if kept) and clears the cookie.
    func logout(_ request: Request) -> Response {
        if let session = Self.session(of: request) { sessions.close(session) }
        return Response(
            status: .seeOther, headers: [.location: "/", .setCookie: "edda_session=; Path=/; SameSite=Strict; HttpOnly; Max-Age=0"]
        )
    }

    /// `path` if it is a path on this server (never a redirect to another site), else `nil`.
    static func localPath(_ path: String) -> String? {
        guard path.hasPrefix("/"), !path.hasPrefix("//"),
            path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "\\" })
        else { return nil }
        return path
    }

    static func loginPage(next: String, message: String?, status: HTTPResponse.Status = .unauthorized) -> Response {
        var body = "<h1>Edda</h1><p>This viewer is protected by a token (the server's bearer token).</p>"
        if let message { body += "<p class=\"field-error\">\(HTML.escape(message))</p>" }
        body += "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"\(HTML.escape(next))\">"
        body += "<label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\"></label> <button type=\"submit\">Sign in</button></form>"
        var response = HTML.page(title: "Edda — sign in", body: body, status: status)
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

/// The viewer's signed-in sessions: random IDs, kept in memory for ``lifetime`` (a restart signs
/// everyone out).
final class ViewerSessions: Sendable {
    static let lifetime: TimeInterval = 12 * 3600
    private let opened = Mutex<[String: Date]>([:])

    func open() -> String {
        let id = UUID().uuidString + UUID().uuidString
        opened.withLock { sessions in
            let now = Date()
            sessions = sessions.filter { now.timeIntervalSince($0.value) < Self.lifetime }
            if sessions.count >= 10_000, let oldest = sessions.min(by: { $0.value < $1.value }) { sessions[oldest.key] = nil }
            sessions[id] = now
        }
        return id
    }

    func close(_ id: String) {
        _ = opened.withLock { $0.removeValue(forKey: id) }
    }

    func isOpen(_ id: String) -> Bool {
        opened.withLock { sessions in
            guard let since = sessions[id] else { return false }
            return Date().timeIntervalSince(since) < Self.lifetime
        }
    }
}

/// A JSON response from a `JSONSerialization` document (keys sorted).
func jsonResponse(_ document: Any, status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return Response(
        status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data))
    )
}
