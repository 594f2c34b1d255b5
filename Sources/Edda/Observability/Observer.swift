import CoreMetrics
import Foundation
import Instrumentation
import ServiceContextModule
import Tracing

/// What an app reports, in one place: its metrics, its tracer (when one is bootstrapped) and its
/// hooks. Built once per app.
final class Observer: Sendable {
    let metrics: EngineMetrics?
    /// `nil` when no tracer is set up (the no-op tracer): then no span is even started.
    let tracer: (any Tracer)?
    let hooks: HookDispatcher?
    let clock: any WorkflowClock

    init(configuration: EddaApp.Configuration) {
        clock = configuration.clock
        guard configuration.instrumentation else {
            (metrics, tracer, hooks) = (nil, nil, nil)
            return
        }
        metrics = EngineMetrics(factory: configuration.metricsFactory ?? MetricsSystem.factory)
        let tracer = configuration.tracer ?? InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
        hooks = configuration.hooks.isEmpty ? nil : HookDispatcher(hooks: configuration.hooks, bufferSize: configuration.hookBufferSize)
    }

    // MARK: - Trace context

    /// The current trace context, as the keys and values the tracer propagates (`traceparent`…):
    /// stored with an instance at its start, so that its runs — after a crash, on another worker,
    /// after a wait — link back to the trace that started it.
    func currentTraceContext() -> [String: String]? {
        guard let tracer, let context = ServiceContext.current else { return nil }
        var carrier: [String: String] = [:]
        tracer.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier.isEmpty ? nil : carrier
    }

    /// The trace context `carrier` holds (a received CloudEvent's extensions, say), re-injected: only
    /// the keys this tracer propagates, or `nil` when it holds none.
    func traceContext(fromCarrier carrier: [String: String]) -> [String: String]? {
        guard let tracer, !carrier.isEmpty else { return nil }
        var context = ServiceContext.topLevel
        tracer.extract(carrier, into: &context, using: DictionaryExtractor())
        var injected: [String: String] = [:]
        tracer.inject(context, into: &injected, using: DictionaryInjector())
        return injected.isEmpty ? nil : injected
    }

    /// A service context holding the trace context `carrier` carries.
    func context(from carrier: [String: String]?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let tracer, let carrier, !carrier.isEmpty else { return context }
        tracer.extract(carrier, into: &context, using: DictionaryExtractor())
        return context
    }

    // MARK: - Spans

    /// Runs `body` in a span named `name` when a tracer is set up; otherwise just runs it.
    func withSpan<T>(
        _ name: String, context: ServiceContext? = nil, attributes: (inout SpanAttributes) -> Void,
        _ body: (any Span) async throws -> T
    ) async rethrows -> T {
        guard let tracer else { return try await body(NoOpTracer.NoOpSpan(context: .topLevel)) }
        let span = tracer.startSpan(name, context: context ?? ServiceContext.current ?? .topLevel, ofKind: .internal)
        attributes(&span.attributes)
        defer { span.end() }
        do {
            return try await ServiceContext.withValue(span.context) { try await body(span) }
        } catch {
            span.recordError(error)
            throw error
        }
    }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

struct DictionaryExtractor: Extractor {
    /// The key as given, in any case, or as a CloudEvents extension name (``Observer/extensionName(_:)``).
    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key] ?? carrier.first { $0.key.lowercased() == key.lowercased() }?.value ?? carrier[Observer.extensionName(key)]
    }
}

extension Observer {
    /// A propagation key as a CloudEvents extension attribute name, which may hold only lowercase
    /// letters and digits: `traceparent` stays, `x-trace-id` becomes `xtraceid`.
    static func extensionName(_ key: String) -> String {
        String(key.lowercased().unicodeScalars.filter { ("a"..."z").contains($0) || ("0"..."9").contains($0) }.map(Character.init))
    }
}

extension Duration {
    /// The duration in whole nanoseconds, for a metrics timer.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
