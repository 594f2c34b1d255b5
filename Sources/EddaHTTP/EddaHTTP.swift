public import Edda
public import Hummingbird
public import Logging
import NIOCore

/// Edda's HTTP face: a JSON API to list, inspect, start, cancel and retry instances and to send
/// events, a CloudEvents ingress, and a viewer (server-rendered pages: `/` lists instances,
/// `/instances/{id}` shows one with Cancel or Retry — Retry asks for confirmation at
/// `/instances/{id}/retry` and is recorded in history —, `/workflows/{name}/start` is a start form
/// generated from the input type) — on Hummingbird, in a module of its own (a SQLite-only user
/// never builds it). With a bearer token, browsers sign in at `/login` (wrong tokens are
/// throttled per client) and out with the pages' Sign out button (`POST /logout`). The viewer's
/// errors (a bad filter, a form over the size limit, an unknown instance, another method) are
/// HTML pages in its layout, a filter's error next to its field. An unfinished instance's page and
/// the list are live: a small same-origin script follows a Server-Sent Events stream
/// (`/instances/{id}/live`, `/live?<filters>`) and swaps in the parts that changed; without
/// JavaScript the pages are as before.
///
/// ```swift
/// let api = EddaHTTP(app: app, configuration: .init(bearerToken: ProcessInfo.processInfo.environment["EDDA_TOKEN"]))
/// try await ServiceGroup(services: [app, api.server()], logger: logger).run()
/// ```
///
/// API routes (an error is JSON of one shape: `{"error": {"type": "invalid_filter", "message": "…",
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
/// | `POST /api/instances/{id}/retry` | run a failed instance again from its failed step, recorded in its history as retried by `api` (202: `retried_step`, `requested_by`, and `served_here`, whether this server's app registers the workflow — `edda serve` registers none) |
/// | `GET /api/workflows` | the registered workflows, each argument as JSON Schema |
/// | `POST /api/workflows/{name}/instances` | start one: an `application/json` body `{"input": [arguments…], "instance_id": "…"}` (201) |
/// | `POST /api/events` | a CloudEvent, structured (`application/cloudevents+json`) or binary (`ce-*` headers) mode: delivered to the instances waiting for its type, or to one instance named by its `eddainstanceid` extension (202) |
/// | `GET /api/openapi.json` | this API as an OpenAPI 3.1 document |
///
/// `{id}` and `{name}` are one path segment each, percent-encoded (a child's ID `parent/child:1` is
/// `parent%2Fchild%3A1`).
///
/// Every request's `Host` must be one of the server's names (``Configuration-swift.struct/allowedHosts``):
/// others get 421 Misdirected Request, so a web page cannot reach the server through DNS rebinding.
public struct EddaHTTP: Sendable {
    /// Where and how the API listens.
    ///
    /// ```swift
    /// var configuration = EddaHTTP.Configuration(host: "0.0.0.0", port: 8080, bearerToken: token)
    /// configuration.allowedHosts = ["edda.internal", "10.0.0.5:8080"]
    /// ```
    public struct Configuration: Sendable {
        /// The address to bind. Defaults to `127.0.0.1`: reachable from this machine only. Another
        /// address without a ``bearerToken`` is logged as a warning when the server is built.
        public var host: String = "127.0.0.1"
        /// The port to listen on. Defaults to 8080.
        public var port: Int = 8080
        /// When set, every request must carry `Authorization: Bearer <token>` (the scheme in any
        /// case); others get 401 and nothing is done. Browsers sign in at `/login` and out with
        /// `POST /logout`. Defaults to `nil`: no token.
        public var bearerToken: String?
        /// The largest request body accepted; larger ones get 413, which states it. Defaults to 1 MiB.
        public var maxBodyBytes: Int = 1 << 20
        /// Host names, besides the loopback names (`localhost`, `127.0.0.1`, `[::1]`) and ``host``
        /// (unless it is a wildcard such as `0.0.0.0`), that requests may give in their `Host`
        /// header; any other gets 421 Misdirected Request and nothing is done. This is what stops
        /// DNS rebinding: a web page whose own name was re-pointed at this server sends its own name.
        /// An entry `name` admits that name on any port, `name:port` only on that port, `[::1]` an
        /// IPv6 address, and `*` any name (then only a ``bearerToken`` protects the server).
        /// Defaults to `[]`.
        public var allowedHosts: [String] = []
        /// How often a live page's event stream reads the store (one read per open page per
        /// interval): the instance page and the list update this soon after the instance moves.
        /// Defaults to 1 second.
        public var livePollInterval: Duration = .seconds(1)
        /// How long one live stream lasts at most before the browser connects again (tests shorten it).
        var liveStreamLifetime: Duration = .seconds(30 * 60)
        /// Counts the open live streams (tests).
        var liveStreamCounter: LiveStreamCounter?

        public init(
            host: String = "127.0.0.1", port: Int = 8080, bearerToken: String? = nil, maxBodyBytes: Int = 1 << 20, allowedHosts: [String] = [],
            livePollInterval: Duration = .seconds(1)
        ) {
            self.host = host
            self.port = port
            self.bearerToken = bearerToken
            self.maxBodyBytes = maxBodyBytes
            self.allowedHosts = allowedHosts
            self.livePollInterval = livePollInterval
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
        router(context: BasicRequestContext.self)
    }

    /// The routes on a request context of your own. When it conforms to Hummingbird's
    /// `RemoteAddressRequestContext`, sign-in attempts are throttled per client address; otherwise
    /// all clients share one budget of wrong tokens.
    public func router<Context: RequestContext>(context: Context.Type) -> Router<Context> {
        routerAndRoutes(context: Context.self).router
    }

    /// The router, and the routes registered on it (the OpenAPI document's test compares them).
    func routerAndRoutes<Context: RequestContext>(context: Context.Type) -> (router: Router<Context>, routes: RouteTable<Context>) {
        let router = Router(context: Context.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: ErrorMiddleware(signsIn: configuration.bearerToken != nil))
        router.add(middleware: AllowedHostsMiddleware(hosts: AllowedHosts(bindHost: configuration.host, additional: configuration.allowedHosts)))
        router.add(middleware: SameOriginMiddleware())
        if let token = configuration.bearerToken {
            router.add(middleware: BearerTokenMiddleware(token: token, sessions: ViewerSessions(), throttle: LoginThrottle()))
        }
        var routes = RouteTable(router: router)
        APIRoutes(app: app, maxBodyBytes: configuration.maxBodyBytes, signsIn: configuration.bearerToken != nil).register(on: &routes)
        ViewerPages(app: app, maxBodyBytes: configuration.maxBodyBytes, signsIn: configuration.bearerToken != nil).register(on: &routes)
        LivePages(app: app, interval: max(configuration.livePollInterval, .milliseconds(10)), lifetime: configuration.liveStreamLifetime, counter: configuration.liveStreamCounter).register(on: &routes)
        ViewerScript.register(on: &routes)
        routes.refuseOtherMethods()
        return (router, routes)
    }

    /// A Hummingbird application serving ``router()`` on ``Configuration-swift.struct/host`` and
    /// ``Configuration-swift.struct/port``: a `Service` to run next to the ``EddaApp``.
    ///
    /// Bound to an address other than loopback without a ``Configuration-swift.struct/bearerToken``,
    /// it logs a warning at once: anyone who can reach the address can read every input and start,
    /// cancel and retry instances.
    ///
    /// - Parameters:
    ///   - logger: The server's logger.
    ///   - onListening: Called once the server listens, with the port it listens on (the one the
    ///     system picked when ``Configuration-swift.struct/port`` is 0): the moment to print its URL.
    ///     Not called when the server stops before it could tell.
    public func server(
        logger: Logger = Logger(label: "edda.http"), onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        if configuration.bearerToken == nil, !AllowedHosts.isLoopback(configuration.host) {
            logger.warning(
                """
                EddaHTTP listens beyond this machine without a bearer token: anyone who can reach it can read every instance's input \
                and start, cancel and retry instances. Set a bearer token (edda serve: EDDA_TOKEN or --token-file), or bind 127.0.0.1.
                """,
                metadata: ["edda.http.host": "\(configuration.host)", "edda.http.port": "\(configuration.port)"]
            )
        }
        return Application(
            router: router(context: EddaRequestContext.self),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
            onServerRunning: { channel in
                // No address: the channel closed at once (the service group is stopping).
                if let port = channel.localAddress?.port { await onListening(port) }
            },
            logger: logger
        )
    }
}

/// ``EddaHTTP/server(logger:onListening:)``'s request context: Hummingbird's basic one plus the client's
/// address, by which sign-in attempts are throttled.
struct EddaRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
