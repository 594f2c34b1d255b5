import HTTPTypes
import Hummingbird

/// Adds routes to a router and remembers each path's methods, so that ``refuseOtherMethods()`` can
/// answer another method on a known path with 405 and an `Allow` header (Hummingbird's router
/// answers it with 404, as if the path did not exist).
struct RouteTable<Context: RequestContext> {
    let router: Router<Context>
    private var methods: [(path: String, methods: [HTTPRequest.Method])] = []

    init(router: Router<Context>) {
        self.router = router
    }

    mutating func on(
        _ path: String, _ method: HTTPRequest.Method, use handler: @escaping @Sendable (Request, Context) async throws -> Response
    ) {
        router.on(RouterPath(path), method: method, use: handler)
        if let index = methods.firstIndex(where: { $0.path == path }) {
            methods[index].methods.append(method)
        } else {
            methods.append((path, [method]))
        }
    }

    /// Every route added, as its path (`/api/instances/:id`) and method: the OpenAPI document's
    /// test compares them with the paths it describes.
    var routes: [(path: String, method: HTTPRequest.Method)] {
        methods.flatMap { entry in entry.methods.map { (entry.path, $0) } }
    }

    /// The methods other than a path's own answer 405, naming those it takes. Call it once, after
    /// the last route (and after the router's middleware, which these answers go through too).
    func refuseOtherMethods() {
        for (path, allowed) in methods {
            // HEAD comes with GET (the router's autoGenerateHeadEndpoints).
            let allowedNames = (allowed.contains(.get) ? allowed + [.head] : allowed).map(\.rawValue)
            let allow = allowedNames.joined(separator: ", ")
            for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] where !allowedNames.contains(method.rawValue) {
                router.on(RouterPath(path), method: method) { request, _ -> Response in
                    throw APIError(
                        status: .methodNotAllowed, type: "method_not_allowed",
                        message: "\(request.uri.path) does not take \(request.method): use \(allow).", headers: [.allow: allow]
                    )
                }
            }
        }
    }
}
