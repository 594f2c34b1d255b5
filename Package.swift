// swift-tools-version: 6.1
import PackageDescription

import class Foundation.ProcessInfo

let package = Package(
    name: "edda-swift",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Edda", targets: ["Edda"]),
        .library(name: "EddaSQLite", targets: ["EddaSQLite"]),
        .library(name: "EddaTesting", targets: ["EddaTesting"]),
        .library(name: "EddaOutbox", targets: ["EddaOutbox"]),
        .library(name: "EddaPostgres", targets: ["EddaPostgres"]),
        .library(name: "EddaHTTP", targets: ["EddaHTTP"]),
        .library(name: "EddaMCP", targets: ["EddaMCP"]),
        .executable(name: "edda", targets: ["EddaCLI"]),
        .executable(name: "edda-demo", targets: ["EddaDemo"]),
        .executable(name: "edda-bench", targets: ["EddaBenchmarkDriver"]),
        .executable(name: "edda-metrics-demo", targets: ["EddaMetricsDemo"]),
        .executable(name: "edda-example-viewer", targets: ["EddaExampleViewer"]),
        .executable(name: "edda-example-agent", targets: ["EddaExampleAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // Only the metrics example uses it: the library never picks a metrics backend.
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.25.0"),
        // EddaHTTP (the JSON API and CloudEvents ingress), and the tests' HTTP receiver.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // EddaMCP: workflows as tools for AI clients (the official MCP Swift SDK).
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.0"),
        // The MCP tests drive a server process over pipes with the SDK's StdioTransport (FileDescriptor).
        .package(url: "https://github.com/apple/swift-system.git", from: "1.4.0"),
    ],
    targets: [
        // Core: workflows, activities, the replay engine and the Store seam. No database code.
        .target(
            name: "Edda",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
        // The embedded default backend: one SQLite file through GRDB.
        .target(
            name: "EddaSQLite",
            dependencies: [
                "Edda",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The multi-worker backend: one PostgreSQL database through PostgresNIO.
        .target(
            name: "EddaPostgres",
            dependencies: [
                "Edda",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Helpers for users' tests: a real store on a temporary database, scoped app helpers.
        .target(
            name: "EddaTesting",
            dependencies: ["Edda", "EddaSQLite", .product(name: "Logging", package: "swift-log")]
        ),
        // The transactional outbox's relay: delivers committed CloudEvents over HTTP.
        .target(
            name: "EddaOutbox",
            dependencies: [
                "Edda",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The JSON API and CloudEvents ingress, on Hummingbird.
        .target(
            name: "EddaHTTP",
            dependencies: [
                "Edda",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "EddaCLI",
            dependencies: [
                "Edda", "EddaSQLite", "EddaPostgres", "EddaHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                // `edda migrate` tells an empty SQLite file from an older schema.
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The seed's examples as one runnable program (README's first command).
        .executableTarget(
            name: "EddaDemo",
            dependencies: [
                "Edda", "EddaSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/Demo"
        ),
        // Edda's metrics through swift-prometheus, printed after a demo run.
        .executableTarget(
            name: "EddaMetricsDemo",
            dependencies: [
                "Edda", "EddaSQLite",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/Metrics"
        ),
        // The viewer with workflows to start (`swift run edda-example-viewer`): the workflows, which
        // the tests start from the viewer too, and the program serving them.
        .target(name: "EddaViewerExample", dependencies: ["Edda"], path: "Examples/Viewer/Workflows"),
        .executableTarget(
            name: "EddaExampleViewer",
            dependencies: [
                "Edda", "EddaSQLite", "EddaHTTP", "EddaViewerExample",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/Viewer/Main"
        ),
        // The benchmark driver: one JSON line per workload (see Benchmarks/README.md).
        .executableTarget(
            name: "EddaBenchmarkDriver",
            dependencies: [
                "Edda", "EddaSQLite", "EddaPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/Driver"
        ),
        // A worker process the crash tests kill with SIGKILL.
        .executableTarget(
            name: "EddaCrashWorker",
            dependencies: [
                "Edda", "EddaSQLite", "EddaOutbox", "EddaPostgres",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/CrashWorker"
        ),
        .testTarget(
            name: "EddaTests",
            dependencies: [
                // The engine suites run on both backends (TestSupport's Backend).
                "Edda", "EddaTesting", "EddaSQLite", "EddaPostgres", "EddaTestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ]
        ),
        .testTarget(
            name: "EddaSQLiteTests",
            dependencies: [
                "Edda", "EddaSQLite", "EddaTesting", "EddaStoreConformance", "EddaTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "EddaPostgresTests",
            dependencies: [
                "Edda", "EddaPostgres", "EddaTesting", "EddaStoreConformance", "EddaOutbox", "EddaTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "EddaCrashTests",
            dependencies: [
                "Edda", "EddaSQLite", "EddaPostgres", "EddaTestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(
            name: "EddaHTTPTests",
            dependencies: [
                "Edda", "EddaSQLite", "EddaHTTP", "EddaTesting", "EddaTestSupport", "EddaViewerExample",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        // Workflows as MCP tools: only users who import it build the MCP SDK.
        .target(name: "EddaMCP", dependencies: ["Edda", .product(name: "MCP", package: "swift-sdk")]),
        // The seed's research agent: its workflow and models (a fake one, an OpenAI-compatible client)…
        .target(
            name: "EddaAgentExample",
            dependencies: [
                "Edda", .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Examples/Agent/Agent"
        ),
        // …served as MCP tools over stdio (the tests kill it).
        .executableTarget(
            name: "EddaExampleAgent",
            dependencies: [
                "Edda", "EddaSQLite", "EddaMCP", "EddaAgentExample", .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/Agent/Main"
        ),
        .testTarget(
            name: "EddaMCPTests",
            dependencies: [
                "Edda", "EddaMCP", "EddaTesting", "EddaTestSupport", "EddaAgentExample", .product(name: "MCP", package: "swift-sdk"),
                .product(name: "SystemPackage", package: "swift-system"), .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "EddaOutboxTests",
            dependencies: [
                "Edda", "EddaSQLite", "EddaOutbox", "EddaTesting", "EddaTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The store conformance suite: the checks every backend's tests run against it.
        .target(name: "EddaStoreConformance", dependencies: ["Edda"], path: "Tests/StoreConformance"),
        // Shared by the test targets: a real HTTP receiver (Hummingbird) for the outbox relay, the
        // PostgreSQL test server (a fresh schema per test) and Backend (the engine suites' stores).
        .target(
            name: "EddaTestSupport",
            dependencies: [
                "Edda", "EddaSQLite", "EddaPostgres",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport"
        ),
    ]
)

// The ordo-one/benchmark suites, only when asked for: users never resolve the dependency.
//   ENABLE_EDDA_BENCHMARKS=1 swift package benchmark
if ProcessInfo.processInfo.environment["ENABLE_EDDA_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets.append(
        .executableTarget(
            name: "EddaBenchmarks",
            dependencies: [
                "Edda", "EddaSQLite",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/EddaBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    )
}

for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(contentsOf: [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ])
    target.swiftSettings = settings
}
