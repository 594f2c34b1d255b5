public import Edda
public import Hummingbird
public import Logging
import NIOCore

/// Edda's HTTP face: a JSON API to list, inspect, start, cancel and retry instances and to send
/// events, a CloudEvents ingress, and a viewer (server-rendered pages: `/` lists instances,
/// `/instances/{id}` shows one with Cancel or Retry, `/workflows/{name}/start` is a start form
/// generated from the input type) — on Hummingbird, in a module of its own (a SQLite-only user
/// never builds it). With a bearer token, browsers sign in at `/login`.
///
/// ```swift
/// let api = EddaHTTP(app: app, configuration: .init(bearerToken: ProcessInfo.processInfo.environment["EDDA_TOKEN"]))
/// try await ServiceGroup(services: [app, api.server()], logger: logger).run()
/// ```
///
/// Routes (an error is JSON of one shape: `{"error": {"type": "invalid_filter", "message": "…",
/// "field": "limit"}}`, with `type` in snake_case and `field` naming the part of the request at
/// fault or `null`; another method on a known path is a 405 with `Allow`):
///
/// | | |
/// |---|---|
/// | `GET /api/instances?status=&workflow=&input_key=&input_value=&created_from=&created_before=&limit=&after=` | a page of instances, newest first, the next page's cursor, counts per status |
/// | `GET /api/instances/{id}` | one instance |
/// | `GET /api/instances/{id}/history?after=&limit=&failed=true` | its history, paged by sequence number |
/// | `POST /api/instances/{id}/cancel` | ask it to cancel (202) |
/// | `POST /api/instances/cancel?<filters>` | cancel every unfinished instance the filters match (202) |
/// | `POST /api/instances/{id}/retry` | run a failed instance again from its failed step (202) |
/// | `GET /api/workflows` | the registered workflows, each argument as JSON Schema |
/// | `POST /api/workflows/{name}/instances` | start one: an `application/json` body `{"input": [arguments…], "instance_id": "…"}` (201) |
/// | `POST /api/events` | a CloudEvent, structured (`application/cloudevents+json`) or binary (`ce-*` headers) mode: delivered to the instances waiting for its type, or to one instance named by its `eddainstanceid` extension (202) |
///
/// `{id}` and `{name}` are one path segment each, percent-encoded (a child's ID `parent/child:1` is
/// `parent%2Fchild%3A1`).
public struct EddaHTTP: Sendable {
    /// Where and how the API listens.
    public struct Configuration: Sendable {
        /// The address to bind. `127.0.0.1` by default: reachable from this machine only.
        public var host: String = "127.0.0.1"
        public var port: Int = 8080
        /// When set, every request must carry `Authorization: Bearer <token>`; others get 401 and nothing is done.
        public var bearerToken: String?
        /// The largest request body accepted; larger ones get 413, which states it.
        public var maxBodyBytes: Int = 1 << 20

        public init(host: String = "127.0.0.1", port: Int = 8080, bearerToken: String? = nil, maxBodyBytes: Int = 1 << 20) {
            self.host = host
            self.port = port
            self.bearerToken = bearerToken
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public let app: EddaApp
    public let configuration: Configuration

    public init(app: EddaApp, configuration: Configuration = .init()) {
        self.app = app
        self.configuration = configuration
    }

    /// The routes, for embedding in your own Hummingbird application or for tests.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: SameOriginMiddleware())
        if let token = configuration.bearerToken {
            router.add(middleware: BearerTokenMiddleware(token: token, sessions: ViewerSessions()))
        }
        var routes = RouteTable(router: router)
        APIRoutes(app: app, maxBodyBytes: configuration.maxBodyBytes).register(on: &routes)
        ViewerPages(app: app, maxBodyBytes: configuration.maxBodyBytes).register(on: &routes)
        routes.refuseOtherMethods()
        return router
    }

    /// A Hummingbird application serving ``router()`` on ``Configuration-swift.struct/host`` and
    /// ``Configuration-swift.struct/port``: a `Service` to run next to the ``EddaApp``.
    public func server(logger: Logger = Logger(label: "edda.http")) -> some ApplicationProtocol {
        Application(
            router: router(), configuration: .init(address: .hostname(configuration.host, port: configuration.port)), logger: logger
        )
    }
}
