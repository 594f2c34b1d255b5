// A worker process for the crash tests. It runs workflows on a SQLite file and appends one line
// per activity (or compensation) execution to a side file. The tests kill it with SIGKILL in the
// middle, run it again, and compare the side file with the store.
//
// Usage:
//   EddaCrashWorker steps <database> <executions-file> <instances> <steps> <step-delay-ms> [<stall-after>]
//     (<stall-after>: once the side file has that many lines, every step stalls 60 s)
//   EddaCrashWorker retry <database> <executions-file>
//   EddaCrashWorker child <database> <executions-file>
//     (a parent runs a step, then a child that runs a step and waits for a "go" event sent to it, then a step)
//   EddaCrashWorker timer <database> <executions-file> <sleep-ms>
//     (a step, a durable timer the run is released for, a step)
//   EddaCrashWorker traced <database> <executions-file> start|resume
//     (start: inside a span of an in-memory tracer, starts a workflow whose second step stalls, and
//     writes "# caller <trace ID> <span ID>"; resume: runs it to its end with a tracer of its own and
//     writes "# run <trace ID> <parent span ID>" for the run's span)
//   EddaCrashWorker saga  <database> <executions-file>
//   EddaCrashWorker patch <database> <executions-file> old|patched [<stall-step>]
//     (instance "patch-1": price, tax (old: old_tax; patched: ctx.patched("new-tax-rule") picks
//     new_tax or old_tax), ship; a step named <stall-step> stalls 60 s once it has run; the result
//     is written as "# result <output>")
//   EddaCrashWorker transaction <database> <executions-file> in-commit|after-commit|none
//     (kills itself with SIGKILL at that exact point: inside the step's transaction after the
//     user's write, or once the step's commit returned)
//   EddaCrashWorker outbox <database> <executions-file> <endpoint>
//     (commits one outbox event, runs a relay to <endpoint>, exits once it is published)
//   EddaCrashWorker postgres <postgres-url> <executions-file> <worker-id> <instances> <steps> <step-delay-ms> start|join|create [option…]
//     (a worker on a shared PostgreSQL database, 1 s leases, polling every 100 ms; `start` also
//     starts the instances pg-0, pg-1, …; `create` only creates them, ready for any worker, and
//     exits. A worker exits once every instance has completed, whoever ran it, or, on SIGTERM,
//     after a graceful shutdown. Options: `max=<n>` runs at most n instances at once (a starter
//     that is full creates the rest ready); `lease=<ms>` sets the lease, renewed every quarter of
//     it; `trace` also writes "# done <instance> <step> <worker>" when a step's body returns. A run
//     that ends with its lease lost writes "# lease-lost <instance> <worker>". `queue=<c>,<w>,<n>,<ms>`
//     registers a queue "proof" of concurrency c, worker concurrency w, that admits at most n per
//     <ms> ms, and starts the instances on it. `version=<v>` makes the app of application version v:
//     it starts (or creates) pg-<v>-0, pg-<v>-1, … recorded with that version, and exits once those
//     have completed; `linger=<ms>` keeps it running (claiming) that long after.)

#if canImport(Glibc)
import Glibc
#endif
import Edda
import EddaOutbox
import EddaPostgres
import EddaSQLite
import Foundation
import GRDB
import InMemoryTracing
import Logging
import Synchronization
import Tracing

let arguments = CommandLine.arguments
guard arguments.count >= 4 else {
    FileHandle.standardError.write(Data("usage: EddaCrashWorker steps|retry|saga <database> <executions-file> …\n".utf8))
    exit(2)
}
let mode = arguments[1]
let databasePath = arguments[2]
let executionsPath = arguments[3]

/// Appends one line with O_APPEND: the line is in the kernel's page cache when write returns,
/// so it survives the SIGKILL of this process.
@Sendable func recordExecution(_ line: String) {
    let fd = open(executionsPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    precondition(fd >= 0, "cannot open \(executionsPath)")
    _ = (line + "\n").withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

/// Once the side file has `count` lines, every step stalls (60 s): a test that kills the worker
/// then is sure to find it mid-run, however slow the machine.
@Sendable func stall(after count: Int?) async throws {
    guard let count else { return }
    let lines = (try? String(contentsOfFile: executionsPath, encoding: .utf8))?.split(separator: "\n").count ?? 0
    if lines >= count { try await Task.sleep(for: .seconds(60)) }
}

/// Set on SIGTERM: the postgres worker leaves.
let leaving = Atomic(false)

var logger = Logger(label: "edda.crash-worker")
logger.logLevel = ProcessInfo.processInfo.environment["EDDA_CRASH_WORKER_LOG"] == "debug" ? .debug : .warning
switch mode {
case "postgres":
    guard arguments.count >= 9, let instances = Int(arguments[5]), let steps = Int(arguments[6]), let delay = Int(arguments[7]) else { exit(2) }
    let workerID = arguments[4]
    let options = Dictionary(
        arguments.dropFirst(9).map { option in
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }, uniquingKeysWith: { $1 })
    let trace = options["trace"] != nil
    let stallAfter = options["stall"].flatMap(Int.init)
    let step = Activity("step", retry: .noRetry) { (ctx, index: Int) -> Int in
        recordExecution("\(ctx.instanceID) \(ctx.stepID) \(workerID)")
        try await stall(after: stallAfter)
        try await Task.sleep(for: .milliseconds(delay))
        if trace { recordExecution("# done \(ctx.instanceID) \(ctx.stepID) \(workerID)") }
        return index
    }
    let manySteps = Workflow("many_steps") { (ctx, steps: Int) -> Int in
        var total = 0
        for index in 1...steps { total += try await step(ctx, index) }
        return total
    }
    var markingLogger = Logger(label: "edda.crash-worker") { _ in LeaseLostMarker(workerID: workerID, forwardingTo: logger) }
    markingLogger.logLevel = .debug   // the marker needs the engine's debug line; it forwards at the logger's own level
    var storeConfiguration = try PostgresStore.Configuration(url: databasePath)
    storeConfiguration.queryTimeout = .seconds(2)   // a statement lost with its connection is given up quickly
    let store = try PostgresStore(configuration: storeConfiguration, logger: markingLogger)
    var configuration = EddaApp.Configuration()
    configuration.workerID = workerID
    let lease = options["lease"].flatMap(Int.init) ?? 1000
    configuration.leaseDuration = .milliseconds(lease)
    configuration.leaseRenewalInterval = .milliseconds(lease / 4)
    configuration.pollInterval = .milliseconds(100)
    if let max = options["max"].flatMap(Int.init) { configuration.maxConcurrentInstances = max }
    let version = options["version"]
    configuration.applicationVersion = version
    let prefix = version.map { "pg-\($0)-" } ?? "pg-"
    let queue = options["queue"].map { option -> Queue in
        let limits = option.split(separator: ",").compactMap { Int($0) }
        precondition(limits.count == 4, "queue=<concurrency>,<worker-concurrency>,<starts>,<period-ms>")
        return Queue("proof", concurrency: limits[0], workerConcurrency: limits[1], rateLimit: .init(limits[2], per: .milliseconds(limits[3])))
    }
    // SIGTERM: leave gracefully (the running steps record, the leases are released).
    signal(SIGTERM, SIG_IGN)
    let terminations = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
    terminations.setEventHandler { leaving.store(true, ordering: .relaxed) }
    terminations.resume()
    let postgresApp = EddaApp(store: store, serviceName: "crash-test", configuration: configuration, logger: markingLogger)
    try postgresApp.register(manySteps)
    if let queue { postgresApp.register(queue) }
    @Sendable func start(_ index: Int) async throws {
        if let queue {
            try await postgresApp.start(manySteps, steps, instanceID: "\(prefix)\(index)", on: queue)
        } else {
            try await postgresApp.start(manySteps, steps, instanceID: "\(prefix)\(index)")
        }
    }
    @Sendable func startInstances() async throws {
        for index in 0..<instances {
            // After a failure (a dropped connection), start again: the same ID and input never make a second instance.
            while (try? await start(index)) == nil {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
    if arguments[8] == "create" {
        // The app does not run: the instances are created ready, for the workers to claim.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            try await startInstances()
            group.cancelAll()
        }
        exit(0)
    }
    try await postgresApp.run { app in
        if arguments[8] == "start" { try await startInstances() }
        // A failed count (a dropped connection) is no reason to stop: count again.
        var mine = InstanceQuery(workflowName: "many_steps")
        mine.applicationVersions = version.map { [$0] }
        while (try? await store.statusCounts(matching: mine))?[.completed] != instances, !leaving.load(ordering: .relaxed) {
            try await Task.sleep(for: .milliseconds(20))
        }
        if let linger = options["linger"].flatMap(Int.init) { try await Task.sleep(for: .milliseconds(linger)) }
    }
    exit(0)

default:
    break
}

let app: EddaApp
if databasePath.hasPrefix("postgres://") {
    // Short leases: the process resumed after a SIGKILL takes the dead one's instance at once.
    var configuration = EddaApp.Configuration()
    configuration.leaseDuration = .milliseconds(600)
    configuration.leaseRenewalInterval = .milliseconds(150)
    configuration.pollInterval = .milliseconds(50)
    let store = try PostgresStore(configuration: try PostgresStore.Configuration(url: databasePath), logger: logger)
    app = EddaApp(store: store, serviceName: "crash-test", configuration: configuration, logger: logger)
} else {
    app = EddaApp(store: try SQLiteStore(path: databasePath, logger: logger), serviceName: "crash-test", logger: logger)
}

switch mode {
case "steps":
    guard arguments.count >= 7, let instances = Int(arguments[4]), let steps = Int(arguments[5]), let delay = Int(arguments[6]) else { exit(2) }
    let stallAfter = arguments.count > 7 ? Int(arguments[7]) : nil
    let step = Activity("step", retry: .noRetry) { (ctx, index: Int) -> Int in
        recordExecution("\(ctx.instanceID) \(ctx.stepID)")
        try await stall(after: stallAfter)
        try await Task.sleep(for: .milliseconds(delay))
        return index
    }
    let manySteps = Workflow("many_steps") { (ctx, steps: Int) -> Int in
        var total = 0
        for index in 1...steps {
            total += try await step(ctx, index)
        }
        return total
    }
    try app.register(manySteps)
    let totals = try await app.run { app in
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<instances {
                // Same IDs and input on every run: the second run gets handles to the existing instances.
                let handle = try await app.start(manySteps, steps, instanceID: "crash-\(index)")
                group.addTask { try await handle.result() }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }
    print("completed \(totals.count) instances")

case "patch":
    guard arguments.count >= 5 else { exit(2) }
    let patchedCode = arguments[4] == "patched"
    let stallStep = arguments.count > 5 ? arguments[5] : nil
    func step(_ name: String, _ value: @escaping @Sendable (Int) -> Int) -> Activity<Int, Int> {
        Activity(name, retry: .noRetry) { (ctx, input: Int) -> Int in
            recordExecution(name)
            if name == stallStep { try await Task.sleep(for: .seconds(60)) }   // killed here
            return value(input)
        }
    }
    let price = step("price") { _ in 100 }
    let oldTax = step("old_tax") { $0 / 10 }
    let newTax = step("new_tax") { $0 / 5 }
    let ship = step("ship") { $0 }
    let checkout = Workflow("checkout") { (ctx, order: Int) -> String in
        let total = try await price(ctx, order)
        if patchedCode, try await ctx.patched("new-tax-rule") {
            return "new tax: \(try await ship(ctx, total + newTax(ctx, total)))"
        }
        return "old tax: \(try await ship(ctx, total + oldTax(ctx, total)))"
    }
    try app.register(checkout)
    let result = try await app.run { app in try await app.start(checkout, 1, instanceID: "patch-1").result() }
    recordExecution("# result \(result)")
    exit(0)

case "timer":
    // One step, a durable timer of <sleep-ms> (released: the run holds nothing while it waits), one step.
    guard arguments.count == 5, let sleep = Int(arguments[4]) else { exit(2) }
    let before = Activity("before", retry: .noRetry) { (ctx) -> Int in
        recordExecution("before")
        return 1
    }
    let after = Activity("after", retry: .noRetry) { (ctx) -> Int in
        recordExecution("after")
        return 2
    }
    let workflow = Workflow("sleeping") { (ctx) -> Int in
        let first = try await before(ctx)
        try await ctx.sleep(for: .milliseconds(sleep))
        return first + (try await after(ctx))
    }
    var configuration = EddaApp.Configuration()
    configuration.maxInMemoryWait = .zero
    let timerApp = EddaApp(store: try SQLiteStore(path: databasePath, logger: logger), serviceName: "crash-test", configuration: configuration, logger: logger)
    try timerApp.register(workflow)
    let total = try await timerApp.run { app in try await app.start(workflow, instanceID: "timer-1").result() }
    print("completed with \(total)")
    exit(0)

case "traced":
    guard arguments.count == 5 else { exit(2) }
    let resuming = arguments[4] == "resume"
    let first = Activity("first", retry: .noRetry) { (ctx) -> Int in
        recordExecution("first")
        return 1
    }
    let second = Activity("second", retry: .noRetry) { (ctx) -> Int in
        if !resuming {
            recordExecution("second stalls")
            try await Task.sleep(for: .seconds(60))   // killed here
        }
        recordExecution("second")
        return 2
    }
    let workflow = Workflow("traced_steps") { (ctx) -> Int in try await first(ctx) + second(ctx) }
    // Each process makes IDs of its own (with the same ones, an unlinked run would look linked).
    let process = "\(getpid())"
    let tracer = InMemoryTracer(idGenerator: .init(nextTraceID: { "trace-\(process)-\(UUID().uuidString.prefix(8))" }, nextSpanID: { "span-\(process)-\(UUID().uuidString.prefix(8))" }))
    var configuration = EddaApp.Configuration()
    configuration.tracer = tracer
    let tracedApp = EddaApp(store: try SQLiteStore(path: databasePath, logger: logger), serviceName: "crash-test", configuration: configuration, logger: logger)
    try tracedApp.register(workflow)
    if resuming {
        let total = try await tracedApp.run { app in try await app.handle(for: workflow, instanceID: "traced-1").result() }
        guard let run = tracer.finishedSpans.first(where: { $0.operationName == "edda.workflow traced_steps" }) else { exit(3) }
        recordExecution("# run \(run.traceID) \(run.parentSpanID ?? "-")")
        print("completed with \(total)")
        exit(0)
    }
    _ = try await tracedApp.run { app in
        try await tracer.withSpan("caller") { span in
            let caller = span.context.inMemorySpanContext
            recordExecution("# caller \(caller?.traceID ?? "-") \(caller?.spanID ?? "-")")
            return try await app.start(workflow, instanceID: "traced-1").result()
        }
    }
    exit(0)

case "child":
    let before = Activity("before", retry: .noRetry) { (ctx) -> Int in
        recordExecution("before")
        return 1
    }
    let childWork = Activity("child_work", retry: .noRetry) { (ctx, n: Int) -> Int in
        recordExecution("child work")
        return n * 2
    }
    let after = Activity("after", retry: .noRetry) { (ctx, n: Int) -> Int in
        recordExecution("after")
        return n + 1
    }
    let child = Workflow("child") { (ctx, n: Int) -> Int in
        let doubled = try await childWork(ctx, n)
        let go = try await ctx.waitForEvent(type: "go", as: Int.self)
        return doubled + go.data
    }
    let parent = Workflow("parent") { (ctx) -> Int in
        let first = try await before(ctx)
        let fromChild = try await ctx.runChild(child, 20 + first)
        return try await after(ctx, fromChild)
    }
    try app.register(parent)
    try app.register(child)
    let total = try await app.run { app in try await app.start(parent, instanceID: "parent-1").result() }
    print("completed with \(total)")

case "retry":
    // Fails on attempts 1-4, succeeds on 5; 300 ms before attempt 2, then 1 s: the test kills the
    // worker in the backoff after attempt 2, which leaves it a second (not 300 ms) on a loaded machine.
    let policy = RetryPolicy(maxAttempts: 6, initialInterval: .milliseconds(300), backoffCoefficient: 4, maxInterval: .seconds(1), maxDuration: nil)
    let flaky = Activity("flaky", retry: policy) { (ctx) -> Int in
        recordExecution("attempt \(ctx.attempt)")
        if ctx.attempt < 5 { throw TerminalErrorIsNotThis() }
        return ctx.attempt
    }
    let workflow = Workflow("retrying") { (ctx) -> Int in try await flaky(ctx) }
    try app.register(workflow)
    let attempts = try await app.run { app in try await app.start(workflow, instanceID: "retry-1").result() }
    print("succeeded on attempt \(attempts)")

case "saga":
    let undo = Compensation("undo") { (ctx, result: Int, index: Int) in
        recordExecution("undo \(index)")
        try await Task.sleep(for: .milliseconds(150))
    }
    let step = Activity("step") { (ctx, index: Int) -> Int in
        recordExecution("step \(index)")
        return index
    }.onFailure(undo)
    let fail = Activity("fail", retry: .noRetry) { (ctx) -> Int in
        recordExecution("fail")
        throw TerminalError("payment declined")
    }
    let workflow = Workflow("saga") { (ctx) -> Int in
        for index in 1...4 {
            _ = try await step(ctx, index)
        }
        return try await fail(ctx)
    }
    try app.register(workflow)
    do {
        _ = try await app.run { app in try await app.start(workflow, instanceID: "saga-1").result() }
    } catch let error as WorkflowFailedError {
        print("failed as expected: \(error.error)")
    }

case "transaction":
    guard arguments.count == 5 else { exit(2) }
    let killAt = arguments[4]
    let store = try SQLiteStore(path: databasePath, logger: logger)
    try store.writer.write { db in
        try db.execute(sql: "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY NOT NULL, total INTEGER NOT NULL)")
    }
    let place = Activity("place", retry: .noRetry) { (ctx, id: String) -> Int in
        recordExecution("place")
        try ctx.transaction { db in
            try db.execute(sql: "INSERT INTO orders (id, total) VALUES (?, 42)", arguments: [id])
            if killAt == "in-commit" { kill(getpid(), SIGKILL) }
        }
        return 42
    }
    let confirm = Activity("confirm", retry: .noRetry) { (ctx, total: Int) -> String in
        if killAt == "after-commit" { kill(getpid(), SIGKILL) }
        recordExecution("confirm")
        return "confirmed \(total)"
    }
    let workflow = Workflow("transactional") { (ctx, id: String) -> String in
        let total = try await place(ctx, id)
        return try await confirm(ctx, total)
    }
    let transactionalApp = EddaApp(store: store, serviceName: "crash-test", logger: logger)
    try transactionalApp.register(workflow)
    let result = try await transactionalApp.run { app in try await app.start(workflow, "order-1", instanceID: "tx-1").result() }
    print(result)

case "outbox":
    guard arguments.count == 5 else { exit(2) }
    let store = try SQLiteStore(path: databasePath, logger: logger)
    let emit = Activity("emit") { (ctx) -> String in
        let event = try CloudEvent(id: "order-1-placed", type: "order.placed", source: "/crash-test", json: ["order": 1])
        try ctx.enqueue(event)
        return event.id
    }
    let workflow = Workflow("emitting") { (ctx) -> String in try await emit(ctx) }
    let outboxApp = EddaApp(store: store, serviceName: "crash-test", logger: logger)
    let relay = OutboxRelay(
        store: store,
        configuration: .init(endpoint: arguments[4], pollInterval: .milliseconds(20), requestTimeout: .seconds(30), claimTimeout: .milliseconds(300)),
        logger: logger
    )
    try await outboxApp.run { app in
        _ = try await app.start(workflow, instanceID: "outbox-1").result()
        recordExecution("committed")
        let relaying = Task { try await relay.run() }
        while try await store.outboxEvents(status: .published, limit: 1).isEmpty {
            try await Task.sleep(for: .milliseconds(10))
        }
        relaying.cancel()
        recordExecution("published")
    }

default:
    exit(2)
}

struct TerminalErrorIsNotThis: Error {}

/// Forwards to the worker's logger, and writes "# lease-lost <instance> <worker>" to the executions
/// file when a run ends because its lease was lost (the engine logs that at debug).
struct LeaseLostMarker: LogHandler {
    let workerID: String
    var forwardingTo: Logger
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]

    init(workerID: String, forwardingTo logger: Logger) {
        self.workerID = workerID
        self.forwardingTo = logger
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        if event.message.description.hasPrefix("lease lost"), let instanceID = event.metadata?["edda.instance.id"] {
            recordExecution("# lease-lost \(instanceID) \(workerID)")
        }
        guard event.level >= forwardingTo.logLevel else { return }
        forwardingTo.log(
            level: event.level, event.message, metadata: event.metadata, source: event.source, file: event.file, function: event.function,
            line: event.line
        )
    }
}
