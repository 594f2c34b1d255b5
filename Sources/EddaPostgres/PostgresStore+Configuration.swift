@_spi(EddaStores) import Edda
import Foundation
public import PostgresNIO

extension PostgresStore {
    /// Settings of a PostgreSQL store.
    ///
    /// ```swift
    /// let store = try PostgresStore(url: "postgres://edda:secret@db.internal:5432/orders?schema=edda")
    /// ```
    public struct Configuration: Sendable {
        /// How to reach the server: host, port, user, password, database, TLS and pool size.
        public var client: PostgresClient.Configuration

        /// The schema holding Edda's tables, created if missing. Several apps (or test runs) can share
        /// a database with one schema each. Defaults to `"public"`.
        public var schema: String = "public"

        /// The most connections the pool opens (PostgresNIO's `maximumConnections`). Defaults to 20.
        /// The store also keeps ``writeConnections`` open outside the pool for runs' writes, a worker
        /// one more for its lease renewals, and the store one for a moment when it starts, to check
        /// that the server accepts it.
        ///
        /// The store's connections run no keep-alive queries (PostgresNIO arms their timer at every
        /// release of a connection, which cost as much client CPU as the statement itself): a
        /// connection that died while idle is found by the next statement on it, which fails or is
        /// given up after ``queryTimeout``, and is retried.
        public var maximumConnections: Int {
            get { client.options.maximumConnections }
            set { client.options.maximumConnections = newValue }
        }

        /// Connections of the write path, outside the pool and always open: steps' records, new
        /// instances and completions go through them, in batches shared by concurrent runs, one
        /// batch per connection at a time. Defaults to 1: on a 2-core machine with the server
        /// beside the worker, one connection gave the most steps per second at 32 concurrent
        /// workflows (bigger batches, less work per record); more let batches overlap, which can pay
        /// when the round trip or the commit's flush is long against the work of a batch.
        public var writeConnections = 1

        /// How long ``PostgresStore/run()`` waits for the server when it starts: then it fails with
        /// the reason the server could not be reached (connection refused, authentication failed…).
        /// Defaults to 30 s.
        public var startupTimeout: Duration = .seconds(30)

        /// How long one store statement may go unanswered before the store gives it up as lost and
        /// fails the operation with a ``Edda/StoreError`` (the engine then retries it). It guards
        /// against a connection that closed under a query (PostgresNIO can lose such a query). Keep
        /// it well above your slowest statement. Defaults to 30 s.
        public var queryTimeout: Duration = .seconds(30)

        /// How long one attempt of a ``Edda/TransactionMode/wholeBody`` activity may run inside its
        /// transaction. Past it, the store closes the attempt's connection — the server rolls the
        /// transaction back and frees its locks, so the instance is not pinned — and fails the attempt
        /// with ``WholeBodyTimeoutError``, retried by the activity's policy. Defaults to 60 s.
        ///
        /// The server also ends an Edda session left idle inside a transaction for longer than this
        /// plus 10 s (`idle_in_transaction_session_timeout`): a worker paused or cut off in the middle
        /// of a step does not hold its locks past its lease for ever.
        public var wholeBodyTimeout: Duration = .seconds(60)

        /// The longest one statement on an Edda connection may run before the server cancels it
        /// (`statement_timeout`): the store's own statements, and the queries of `ctx.transaction`
        /// bodies and whole-body activities, and your own queries on ``PostgresStore/client``. `nil`
        /// leaves the server's setting. Defaults to 30 s, as ``queryTimeout`` does (it does not follow
        /// it). Migrations are not bounded by it.
        public var statementTimeout: Duration? = .seconds(30)

        /// Whether Edda's connections send their session settings — `statement_timeout`,
        /// `idle_in_transaction_session_timeout`, `default_transaction_isolation` (READ COMMITTED) and
        /// `jit` (off) — as startup parameters. Defaults to `true`. A connection pooler that refuses startup
        /// parameters it does not know (PgBouncer without them in `ignore_startup_parameters`) needs
        /// `false`; then set them on the role instead (`ALTER ROLE edda SET statement_timeout = '30s'`,
        /// `ALTER ROLE edda SET jit = off`, …).
        public var sendsSessionSettings = true

        /// Whether ``PostgresStore/run()`` brings the schema up to date. Defaults to `true`. Tools
        /// that only look (the `edda` CLI) set it to `false`: then `run()` creates and changes
        /// nothing, and fails with ``Edda/StoreError/Code-swift.struct/migrationFailed`` when the
        /// schema holds no Edda tables or a version other than this one's.
        public var migratesSchema = true

        /// How to open a connection outside the pool, to learn why the pool cannot: known for a
        /// configuration read from a URL.
        var probe: (host: String, port: Int, tls: String)?

        /// The name the server shows for this store's connections (`application_name`, as in
        /// `pg_stat_activity`), so that an operator can tell them from other clients':
        ///
        /// ```sql
        /// SELECT pid, state, query FROM pg_stat_activity WHERE application_name = 'order-service';
        /// ```
        ///
        /// Sent when each connection starts, so set it before the store runs. The URL's
        /// `application_name` parameter sets it too. Defaults to `nil`: the server's default (empty).
        public var applicationName: String? {
            get { client.options.additionalStartupParameters.first { $0.0 == "application_name" }?.1 }
            set {
                client.options.additionalStartupParameters.removeAll { $0.0 == "application_name" }
                if let newValue { client.options.additionalStartupParameters.append(("application_name", newValue)) }
            }
        }

        /// Creates a configuration. The connection pool keeps at most 20 connections unless
        /// ``maximumConnections`` says otherwise.
        public init(client: PostgresClient.Configuration) {
            self.client = client
        }

        /// Reads a `postgres://user:password@host:port/database?schema=name&sslmode=disable|prefer|require&application_name=name`
        /// URL. Port defaults to 5432, user to `postgres`, schema to `public`, TLS to `prefer`;
        /// `application_name` sets ``applicationName``.
        ///
        /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/database`` naming what is wrong.
        public init(url: String) throws {
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                  scheme == "postgres" || scheme == "postgresql", let host = components.host, !host.isEmpty
            else {
                throw StoreError(
                    .database,
                    "'\(Self.redacted(url))' is not a PostgreSQL URL. Write it as postgres://user:password@host:5432/database."
                )
            }
            let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
            let tls: PostgresClient.Configuration.TLS
            switch query["sslmode"] ?? "prefer" {
            case "disable": tls = .disable
            case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
            case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
            case let other:
                throw StoreError(.database, "sslmode '\(other)' in the PostgreSQL URL is not one of disable, prefer, require.")
            }
            let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            self.init(
                client: PostgresClient.Configuration(
                    host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                    password: components.password, database: database.isEmpty ? nil : database, tls: tls
                )
            )
            if let schema = query["schema"] {
                self.schema = schema
            }
            self.probe = (host, components.port ?? 5432, query["sslmode"] ?? "prefer")
            if let applicationName = query["application_name"] {
                self.applicationName = applicationName
            }
        }

        /// The URL with its password replaced, for messages. Done by hand: a URL that does not parse
        /// (a password with `#` or `/` in it) must not leak either.
        static func redacted(_ url: String) -> String {
            // Without a scheme (`user:secret@host/db`), the credentials are still hidden.
            let scheme = url.range(of: "://")
            let rest = scheme.map { url[$0.upperBound...] } ?? url[...]
            guard let at = rest.lastIndex(of: "@") else { return url }
            let credentials = rest[..<at]
            let user = credentials.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            let hidden = credentials.contains(":") ? "\(user):***" : user
            return String(url[..<rest.startIndex]) + hidden + String(rest[at...])
        }

        /// The client configuration with Edda's session settings (statement and idle-in-transaction
        /// timeouts, READ COMMITTED, no JIT) sent at connection start, unless already set there.
        var clientWithSessionSettings: PostgresClient.Configuration {
            var client = self.client
            // No keep-alive queries: the pool arms their timer at every release of a connection,
            // which cost half the client's CPU per statement. A dead connection is found by the
            // statement that uses it (it fails, or the query timeout gives it up) and retried.
            client.options.keepAliveBehavior = nil
            guard sendsSessionSettings else { return client }
            func set(_ name: String, _ value: Duration?) {
                guard let value, !client.options.additionalStartupParameters.contains(where: { $0.0 == name }) else { return }
                client.options.additionalStartupParameters.append((name, "\(value.wholeMilliseconds)"))
            }
            set("statement_timeout", statementTimeout)
            set("idle_in_transaction_session_timeout", wholeBodyTimeout + .seconds(10))
            // Edda's statements are written for READ COMMITTED (fenced writes, SKIP LOCKED claims):
            // stated, not assumed from the server's or the role's default.
            if !client.options.additionalStartupParameters.contains(where: { $0.0 == "default_transaction_isolation" }) {
                client.options.additionalStartupParameters.append(("default_transaction_isolation", "read committed"))
            }
            // Edda's statements are short. The planner's cost estimate for an admission's recursive
            // scan passes `jit_above_cost`, and compiling it took 60 ms of a statement that runs in 1.
            if !client.options.additionalStartupParameters.contains(where: { $0.0 == "jit" }) {
                client.options.additionalStartupParameters.append(("jit", "off"))
            }
            return client
        }
    }
}
