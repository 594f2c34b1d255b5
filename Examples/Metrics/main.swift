// Edda's metrics in Prometheus's text format: bootstraps swift-prometheus as the swift-metrics
// backend, runs a few workflows on a temporary SQLite file, and prints what a scrape would get.
//
//     swift run edda-metrics-demo
//
// With swift-otel instead (metrics and traces to an OpenTelemetry collector), bootstrap its
// `OTel.bootstrap(configuration:)` (swift-otel 1.x) before creating the app and run its service
// next to the app in a `ServiceGroup`; Edda uses whatever `MetricsSystem` and
// `InstrumentationSystem` hold. See the README's Observability section.
import Edda
import EddaSQLite
import Foundation
import Logging
import Metrics
import Prometheus

let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

let reserve = Activity("reserve_stock") { (_: ActivityContext, sku: String) -> Bool in true }
let charge = Activity("charge_card", retry: RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(10))) { (ctx: ActivityContext, amount: Int) -> String in
    // The first attempt of each charge fails, to show a retry.
    if ctx.attempt == 1 { throw URLError(.timedOut) }
    return "receipt-\(amount)"
}
let order = Workflow("order") { (ctx: WorkflowContext, sku: String, amount: Int) -> String in
    _ = try await reserve(ctx, sku)
    return try await charge(ctx, amount)
}

let folder = FileManager.default.temporaryDirectory.appendingPathComponent("edda-metrics-demo-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: folder) }
let quiet = Logger(label: "edda") { _ in SwiftLogNoOpLogHandler() }
let app = EddaApp(store: try SQLiteStore(path: folder.appendingPathComponent("demo.sqlite").path, logger: quiet), serviceName: "demo", logger: quiet)
try await app.run { app in
    for index in 1...5 {
        _ = try await app.start(order, "sku-\(index)", index * 10).result()
    }
}

var text: [UInt8] = []
registry.emit(into: &text)
// Every Edda series, without the histograms' buckets.
print(String(decoding: text, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("edda_") && !$0.contains("_bucket") }.sorted().joined(separator: "\n"))
