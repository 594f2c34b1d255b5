import Edda
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Testing

@testable import EddaHTTP

/// DNS rebinding (the Host check), the warning for an unprotected public address, sign-in
/// throttling, sign-out, and the Bearer scheme's case.
@Suite("HTTP: host check, sign-in and sign-out", .timeLimit(.minutes(1)))
struct SecurityTests {
    static let waiter = Workflow("guarded_waiter") { (ctx, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }

    /// A live server on a free port, and a raw client that sets the `Host` header as it likes.
    func withLiveServer(
        _ configuration: EddaHTTP.Configuration = .init(),
        _ body:
            @escaping @Sendable (
                EddaApp, _ port: Int, _ send: @escaping @Sendable (String, HTTPRequest.Method, String, HTTPFields) async throws -> TestClient.Response
            ) async throws -> Void
    ) async throws {
        try await withTestApp { app in
            let server = Application(
                router: EddaHTTP(app: app, configuration: configuration).router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await server.test(.live) { client in
                let port = try #require(client.port)
                try await TestClient.withClient(host: "127.0.0.1", port: port) { raw in
                    try await body(app, port) { uri, method, authority, headers in
                        try await raw.execute(TestClient.Request(uri, method: method, authority: authority, headers: headers))
                    }
                }
            }
        }
    }

    @Test func aRequestForAnotherHostNameIsRefusedAndChangesNothing() async throws {
        try await withLiveServer { app, port, send in
            _ = try await app.start(Self.waiter, 0, instanceID: "w-1")
            let evil = "evil.example:\(port)"
            let origin: HTTPFields = [.origin: "http://\(evil)"]
            let cancel = try await send("/api/instances/w-1/cancel", .post, evil, origin)
            #expect(cancel.head.status == .misdirectedRequest)
            #expect(try await app.instance("w-1")?.cancelRequested == false, "a rebound page cancelled an instance")
            let read = try await send("/api/instances/w-1", .get, evil, [:])
            #expect(read.head.status == .misdirectedRequest, "a rebound page read an instance's input")
            #expect(String(buffer: read.body ?? ByteBuffer()).contains("misdirected_request"))
            #expect(!String(buffer: read.body ?? ByteBuffer()).contains("\"input\""))
            var eventHeaders = origin
            eventHeaders[.contentType] = "application/json"
            eventHeaders[HTTPField.Name("ce-specversion")!] = "1.0"
            let event = try await send("/api/events", .post, evil, eventHeaders)
            #expect(event.head.status == .misdirectedRequest)
            let page = try await send("/", .get, evil, [:])
            #expect(page.head.status == .misdirectedRequest)

            for name in ["localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)", "LOCALHOST", "localhost.:\(port)"] {
                let status = try await send("/api/instances/w-1", .get, name, [:]).head.status
                #expect(status == .ok, "\(name) is this server")
            }
        }
    }

    @Test func allowedHostsAddNamesWithOrWithoutAPort() async throws {
        try await withLiveServer(.init(allowedHosts: ["edda.internal", "viewer.example:8443"])) { _, port, send in
            let named = try await send("/api/instances", .get, "edda.internal:\(port)", [:]).head.status
            #expect(named == .ok)
            let withPort = try await send("/api/instances", .get, "viewer.example:8443", [:]).head.status
            #expect(withPort == .ok)
            let otherPort = try await send("/api/instances", .get, "viewer.example:\(port)", [:]).head.status
            #expect(otherPort == .misdirectedRequest, "only the port given")
            let evil = try await send("/api/instances", .get, "evil.example", [:]).head.status
            #expect(evil == .misdirectedRequest)
        }
        #expect(AllowedHosts(bindHost: "0.0.0.0", additional: []).admits("10.0.0.5:8080") == false, "a wildcard bind admits no name of its own")
        #expect(AllowedHosts(bindHost: "10.0.0.5", additional: []).admits("10.0.0.5:8080"), "the address bound is a name")
        #expect(AllowedHosts(bindHost: "127.0.0.1", additional: ["*"]).admits("anything.example"))
        #expect(AllowedHosts(bindHost: "127.0.0.1", additional: ["::1", "fe80::1"]).admits("[fe80::1]:80"))
        #expect(AllowedHosts(bindHost: "127.0.0.1", additional: []).admits(nil) == false)
        #expect(AllowedHosts(bindHost: "127.0.0.1", additional: []).admits("localhost:notaport") == false)
    }

    @Test func bindingBeyondLoopbackWithoutATokenWarns() async throws {
        try await withTestApp { app in
            func warnings(_ configuration: EddaHTTP.Configuration) -> [String] {
                let log = InMemoryLogHandler()
                _ = EddaHTTP(app: app, configuration: configuration).server(logger: Logger(label: "test") { _ in log })
                return log.entries.filter { $0.level >= .warning }.map { "\($0.message)" }
            }
            let exposed = warnings(.init(host: "0.0.0.0"))
            #expect(exposed.count == 1)
            #expect(exposed.first?.contains("without a bearer token") == true, "\(exposed)")
            #expect(warnings(.init(host: "0.0.0.0", bearerToken: "s3cret")).isEmpty)
            #expect(warnings(.init(host: "127.0.0.1")).isEmpty)
            #expect(warnings(.init(host: "localhost")).isEmpty)
        }
    }

    func withGuardedViewer(_ body: @escaping @Sendable (EddaApp, any TestClientProtocol) async throws -> Void) async throws {
        try await withTestApp { app in
            let server = Application(router: EddaHTTP(app: app, configuration: .init(bearerToken: "s3cret")).router())
            try await server.test(.router) { client in try await body(app, client) }
        }
    }

    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    /// Through ``EddaHTTP/server(logger:)`` on a real socket, whose request context knows the client's address.
    @Test func wrongTokensAreThrottledWith429() async throws {
        try await withTestApp { app in
            try await EddaHTTP(app: app, configuration: .init(port: 0, bearerToken: "s3cret")).server().test(.live) { client in
                for attempt in 1...5 {
                    let wrong = try await client.execute(
                        uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "token=guess\(attempt)"))
                    #expect(wrong.status == .unauthorized)
                }
                let throttled = try await client.execute(uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "token=s3cret"))
                #expect(throttled.status == .tooManyRequests, "even the right token waits")
                #expect(throttled.headers[.setCookie] == nil)
                #expect(Int(throttled.headers[.retryAfter] ?? "") ?? 0 > 0)
                #expect(String(buffer: throttled.body).contains("Too many wrong tokens"))
            }
        }
    }

    @Test func theThrottleForgetsFailuresAfterItsWindowAndPerClient() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 3, window: 60, clock: clock)
        for _ in 1...3 { throttle.recordFailure(of: "10.0.0.1") }
        #expect(throttle.wait(for: "10.0.0.1") == 60)
        #expect(throttle.wait(for: "10.0.0.2") == nil, "another client is not held back")
        clock.advance(by: .seconds(45))
        #expect(throttle.wait(for: "10.0.0.1") == 15)
        clock.advance(by: .seconds(16))
        #expect(throttle.wait(for: "10.0.0.1") == nil)
        throttle.recordFailure(of: "10.0.0.1")
        throttle.recordSuccess(of: "10.0.0.1")
        #expect(throttle.wait(for: "10.0.0.1") == nil)
    }

    @Test func signOutEndsTheSessionAndClearsTheCookie() async throws {
        try await withGuardedViewer { _, client in
            let signedIn = try await client.execute(
                uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "token=s3cret&next=%2F"))
            let session = String(try #require(signedIn.headers[.setCookie]).split(separator: ";")[0])
            let page = try await client.execute(uri: "/", method: .get, headers: [.cookie: session])
            #expect(page.status == .ok)
            #expect(String(buffer: page.body).contains("action=\"/logout\""), "a signed-in page offers Sign out")
            let out = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: session])
            #expect(out.status == .seeOther)
            let cleared = try #require(out.headers[.setCookie])
            #expect(cleared.hasPrefix("edda_session=;") && cleared.contains("Max-Age=0"))
            let after = try await client.execute(uri: "/", method: .get, headers: [.cookie: session])
            #expect(after.status == .unauthorized, "the old cookie opens nothing")
        }
    }

    @Test func theBearerSchemeIsCaseInsensitive() async throws {
        try await withGuardedViewer { _, client in
            for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
                let response = try await client.execute(uri: "/api/instances", method: .get, headers: [.authorization: "\(scheme) s3cret"])
                #expect(response.status == .ok, "\(scheme)")
            }
            #expect(try await client.execute(uri: "/api/instances", method: .get, headers: [.authorization: "Basic s3cret"]).status == .unauthorized)
            #expect(try await client.execute(uri: "/api/instances", method: .get, headers: [.authorization: "bearer s3cre"]).status == .unauthorized)
        }
    }
}
