import Foundation
import HTTPTypes
import Hummingbird

/// The names a request's `Host` may give: the loopback names (`localhost`, `127.0.0.1`, `[::1]`),
/// the address the server binds (unless it is a wildcard such as `0.0.0.0`), and the names
/// configured in ``EddaHTTP/Configuration-swift.struct/allowedHosts``.
///
/// This stops DNS rebinding: a page on `evil.example` whose name the attacker re-points at
/// 127.0.0.1 is same-origin with itself, so the browser lets it read answers and send a matching
/// `Origin`, but its requests still carry `Host: evil.example`. An entry without a port admits
/// the name on any port (the router may be mounted on any port, or on port 0); `name:port` only
/// that port; `*` any name at all.
struct AllowedHosts: Sendable {
    static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "[::1]"]

    private var anyPort: Set<String> = []
    private var withPort: Set<String> = []
    private var any = false

    init(bindHost: String, additional: [String]) {
        anyPort = Self.loopbackNames
        if !Self.isWildcard(bindHost) { anyPort.insert(Self.normalized(bindHost)) }
        for entry in additional {
            let entry = entry.trimmingCharacters(in: .whitespaces)
            if entry == "*" {
                any = true
            } else if !entry.hasPrefix("["), entry.filter({ $0 == ":" }).count > 1 {
                anyPort.insert(Self.normalized(entry))  // a bare IPv6 address
            } else if let (name, port) = Self.split(entry) {
                if let port { withPort.insert("\(name):\(port)") } else { anyPort.insert(name) }
            }
        }
    }

    /// Whether a request's authority (its `Host` header: `name`, `name:port` or `[v6]:port`) is admitted.
    func admits(_ authority: String?) -> Bool {
        if any { return true }
        guard let authority, let (name, port) = Self.split(authority) else { return false }
        return anyPort.contains(name) || port.map { withPort.contains("\(name):\($0)") } == true
    }

    /// Whether `host` reaches this machine only.
    static func isLoopback(_ host: String) -> Bool {
        let name = normalized(host)
        return loopbackNames.contains(name) || name.hasPrefix("127.")
    }

    static func isWildcard(_ host: String) -> Bool {
        ["0.0.0.0", "::", "[::]", "*", ""].contains(normalized(host))
    }

    /// `Name.Example.` as `name.example`; an IPv6 address in brackets.
    static func normalized(_ name: String) -> String {
        var name = name.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name.contains(":"), !name.hasPrefix("[") { name = "[\(name)]" }
        return name
    }

    /// An authority's normalized name and its port, if any; `nil` when it is not one.
    static func split(_ authority: String) -> (name: String, port: Int?)? {
        let name: Substring
        let rest: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            name = authority[...close]
            rest = authority[authority.index(after: close)...]
        } else if let colon = authority.firstIndex(of: ":") {
            name = authority[..<colon]
            rest = authority[colon...]
        } else {
            name = authority[...]
            rest = ""
        }
        guard !name.isEmpty else { return nil }
        if rest.isEmpty { return (normalized(String(name)), nil) }
        guard rest.first == ":", let port = Int(rest.dropFirst()), (0...65535).contains(port) else { return nil }
        return (normalized(String(name)), port)
    }
}

/// Answers 421 Misdirected Request, doing nothing, to a request whose `Host` is not one of the
/// ``AllowedHosts``: the defence against DNS rebinding, which the `Origin` check cannot give (a
/// rebound page's `Origin` matches its own `Host`).
struct AllowedHostsMiddleware<Context: RequestContext>: RouterMiddleware {
    let hosts: AllowedHosts

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard hosts.admits(request.head.authority) else {
            let name = request.head.authority ?? "(none)"
            throw APIError(
                status: .misdirectedRequest, type: "misdirected_request",
                message: "This server does not answer to the host name '\(name)'. If that is its name, add it to the allowed hosts "
                    + "(EddaHTTP.Configuration.allowedHosts, or edda serve --allowed-host); nothing was done.",
                field: "Host"
            )
        }
        return try await next(request, context)
    }
}
