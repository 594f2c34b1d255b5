import Edda
import EddaTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import EddaHTTP

/// `GET /api/openapi.json`: the JSON API as OpenAPI 3.1, kept in step with the routes the router
/// registers and with the error types the server sends.
@Suite("HTTP: the OpenAPI document", .timeLimit(.minutes(1)))
struct OpenAPITests {
    /// The served document.
    func document() async throws -> [String: Any] {
        let data = try await withTestApp { app in
            try await Application(router: EddaHTTP(app: app).router()).test(.router) { client in
                let response = try await client.execute(uri: "/api/openapi.json", method: .get)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                return Data(response.body.readableBytesView)
            }
        }
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// `/api/instances/:id` as OpenAPI writes it: `/api/instances/{id}`.
    static func template(_ routerPath: String) -> String {
        routerPath.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            .joined(separator: "/")
    }

    static let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options"]

    @Test func everyAPIRouteIsDescribedAndNothingElse() async throws {
        let registered = try await withTestApp { app in
            EddaHTTP(app: app).routerAndRoutes(context: BasicRequestContext.self).routes.routes
                .filter { ErrorMiddleware<BasicRequestContext>.isAPI($0.path) }
                .map { "\($0.method.rawValue) \(Self.template($0.path))" }
        }
        let paths = try #require(try await document()["paths"] as? [String: [String: Any]])
        let described = paths.flatMap { path, item in item.keys.filter(Self.methods.contains).map { "\($0.uppercased()) \(path)" } }
        #expect(registered.count > 10, "\(registered)")
        #expect(
            Set(registered) == Set(described),
            "registered only: \(Set(registered).subtracting(described)); described only: \(Set(described).subtracting(registered))"
        )
        #expect(registered.count == Set(registered).count && described.count == Set(described).count)

        // Each path's `{parameters}` are declared as path parameters of each of its operations.
        for (path, item) in paths {
            let names = Set(path.matches(of: /\{([a-z_]+)\}/).map { String($0.1) })
            for (method, value) in item where Self.methods.contains(method) {
                let operation = try #require(value as? [String: Any])
                let parameters = operation["parameters"] as? [[String: Any]] ?? []
                let declared = parameters.filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String }
                #expect(Set(declared) == names, "\(method) \(path) declares \(declared)")
                let responses = try #require(operation["responses"] as? [String: Any], "\(method) \(path)")
                #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(method) \(path) has no success answer")
            }
        }
    }

    @Test func theRequestAndScheduleSchemasListTheKeysTheRoutesTake() async throws {
        let schemas = try #require((try await document()["components"] as? [String: Any])?["schemas"] as? [String: Any])
        func properties(_ name: String) throws -> Set<String> {
            Set(try #require((schemas[name] as? [String: Any])?["properties"] as? [String: Any], "\(name)").keys)
        }
        #expect(try properties("StartRequest") == Set(APIRoutes.startKeys))
        #expect(try properties("ScheduleToCreate") == Set(APIRoutes.scheduleKeys))
        #expect(try properties("Schedule") == ScheduleDocument.keys)
    }

    @Test func everyReferenceResolves() async throws {
        let document = try await document()
        #expect(document["openapi"] as? String == "3.1.0")
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let text = String(decoding: try JSONSerialization.data(withJSONObject: document, options: [.withoutEscapingSlashes]), as: UTF8.self)
        let references = Set(text.matches(of: /"#\/components\/schemas\/([A-Za-z]+)"/).map { String($0.1) })
        #expect(!references.isEmpty)
        #expect(references.subtracting(schemas.keys).isEmpty, "unresolved: \(references.subtracting(schemas.keys))")
        #expect(Set(schemas.keys).subtracting(references).isEmpty, "unused: \(Set(schemas.keys).subtracting(references))")
    }

    /// The error types the sources name (`type: "…"` and ``APIError/badRequest(_:type:field:)``'s
    /// default), the engine's and the store's codes as the error middleware names them.
    static func errorTypesUsed() throws -> Set<String> {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/EddaHTTP").standardized
        var types: Set<String> = ["bad_request"]
        for file in try FileManager.default.contentsOfDirectory(atPath: sources.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            types.formUnion(text.matches(of: /type: "([a-z_]+)"/).map { String($0.1) })
        }
        types.remove("store_")   // a prefix: the store's codes follow
        let head = HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: "/api/instances")
        let request = Request(head: head, body: .init(buffer: .init()))
        let engineCodes: [EngineError.Code] = [
            .invalidInput, .unknownWorkflow, .instanceAlreadyExists, .duplicateStepID, .corruptHistory, .corruptInput, .instanceNotFound,
            .stopped, .encodingFailed, .noTransaction, .transactionClosed, .workflowNameTaken, .alreadyFinished, .undecodableMessage,
            .notFailed, .reservedStepID, .concurrentStepWithoutID, .concurrentPatch, .deduplicationIDInUse, .unknownQueue, .invalidQueueOptions,
            .scheduleNotFound, .scheduleAlreadyExists, .invalidSchedule,
        ]
        let storeCodes: [StoreError.Code] = [
            .databaseInUse, .migrationFailed, .database, .corruptRecord, .notWritable, .leaseLost, .notAnEddaDatabase, .schemaTooNew,
        ]
        let errors: [any Error] = engineCodes.map { EngineError($0, "") } + storeCodes.map { StoreError($0, "") }
        types.formUnion(errors.map { ErrorMiddleware<BasicRequestContext>.apiError(for: $0, request: request).type })
        return types
    }

    @Test func errorTypesAreSnakeCaseWithAcronymsAsOneWord() {
        #expect(APIError.snakeCase("instanceNotFound") == "instance_not_found")
        #expect(APIError.snakeCase("duplicateStepID") == "duplicate_step_id")
        #expect(APIError.snakeCase("concurrentStepWithoutID") == "concurrent_step_without_id")
        #expect(APIError.snakeCase("HTTPServer") == "http_server")
        #expect(APIError.snakeCase("Misdirected Request") == "misdirected_request")
    }

    @Test func theErrorShapeNamesEveryErrorType() async throws {
        let document = try await document()
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let error = try #require(((schemas["Error"] as? [String: Any])?["properties"] as? [String: Any])?["error"] as? [String: Any])
        #expect(Set(error["required"] as? [String] ?? []) == ["type", "message", "field"])
        let type = try #require((error["properties"] as? [String: Any])?["type"] as? [String: Any])
        let named = Set(type["examples"] as? [String] ?? [])
        let used = try Self.errorTypesUsed()
        #expect(used.count > 30, "\(used)")
        #expect(used.subtracting(named).isEmpty, "not in the document: \(used.subtracting(named).sorted())")
        #expect(named.subtracting(used).isEmpty, "in the document, never sent: \(named.subtracting(used).sorted())")

        // A real error has exactly the described keys.
        try await withTestApp { app in
            try await Application(router: EddaHTTP(app: app).router()).test(.router) { client in
                let response = try await client.execute(uri: "/api/instances?limit=0", method: .get)
                let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                let sent = try #require(body["error"] as? [String: Any])
                #expect(Set(sent.keys) == ["type", "message", "field"] && named.contains(sent["type"] as? String ?? ""), "\(sent)")
            }
        }
    }
}
