public import Foundation
import Logging
public import Hummingbird
import HTTPTypes
import NIOCore
import Synchronization

/// A real HTTP server on 127.0.0.1 that records every POST it gets and answers with the status
/// `respond` picks (given the request and how many requests with the same `ce-id`/`id` came before).
public final class EventReceiver: Sendable {
    public struct Received: Sendable {
        public var headers: [String: String]
        public var body: Data
        /// The CloudEvent id: the `ce-id` header, or `id` in a structured document.
        public var eventID: String
    }

    private let received = Mutex<[Received]>([])
    let respond: @Sendable (Received, _ previousDeliveries: Int) async -> Int

    public init(respond: @escaping @Sendable (Received, Int) async -> Int = { _, _ in 200 }) {
        self.respond = respond
    }

    public var requests: [Received] { received.withLock { $0 } }

    public func deliveries(of eventID: String) -> Int {
        received.withLock { $0.filter { $0.eventID == eventID }.count }
    }

    /// Runs the server around `body`, which gets the URL to POST to.
    public func serve<T: Sendable>(_ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("/events") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let body = Data(buffer.readableBytesView)
            let structuredID = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["id"] as? String
            let entry = Received(headers: headers, body: body, eventID: headers["ce-id"] ?? structuredID ?? "?")
            let previous = self.received.withLock { list in
                defer { list.append(entry) }
                return list.filter { $0.eventID == entry.eventID }.count
            }
            let status = await self.respond(entry, previous)
            return Response(status: HTTPResponse.Status(code: status))
        }
        return try await withLocalServer(router) { port in try await body("http://127.0.0.1:\(port)/events") }
    }

    public struct ReceiverError: Error {}
}

/// Runs a real HTTP server with `router` on a free port of 127.0.0.1 around `body`, which gets the port.
public func withLocalServer<T: Sendable>(
    _ router: Router<BasicRequestContext>, _ body: @escaping @Sendable (Int) async throws -> T
) async throws -> T {
    let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
            portContinuation.finish()
        },
        logger: Logger(label: "test.server", factory: { _ in SwiftLogNoOpLogHandler() })
    )
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await app.runService()
            return nil
        }
        defer { group.cancelAll() }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw EventReceiver.ReceiverError() }
        return try await body(port)
    }
}
