import ArgumentParser
import Edda
import EddaSQLite
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

@main
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda-demo",
        abstract: "Runs the examples of Edda's Core Concepts on an embedded SQLite file, including a real crash and resume.",
        subcommands: [All.self, Signup.self, Replay.self, Order.self, Saga.self],
        defaultSubcommand: All.self
    )
}

struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: "The SQLite file (created if missing).")
    var database = "edda-demo.sqlite"
}

func makeApp(database: String) throws -> EddaApp {
    var logger = Logger(label: "edda.demo")
    logger.logLevel = .warning
    return EddaApp(store: try SQLiteStore(path: database, logger: logger), serviceName: "edda-demo", logger: logger)
}


extension Encodable {
    var json: String { (try? JSONPayload.encode(self).json) ?? "?" }
}

/// Runs everything: signup, the crash-and-resume replay example, validated input.
struct All: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every example (the default).")
    @OptionGroup var options: DatabaseOption

    func run() async throws {
        out("Edda demo on \(options.database)\n")

        out("1. user_signup — a workflow coordinating three activities")
        try await Signup.run(database: options.database)

        out("\n2. The Replay Example — the process really dies after step 2, a new one resumes")
        let instanceID = "replay-\(Int(Date().timeIntervalSince1970))"
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        out("   Starting a worker process; it kills itself with SIGKILL after step 2.")
        let first = try runChild(executable, ["replay", "--database", options.database, "--instance-id", instanceID, "--crash-after", "2"])
        if first.terminationReason == .uncaughtSignal {
            out("   Worker \(first.processIdentifier) died from signal \(first.terminationStatus) (SIGKILL). Nothing ran after step 2.")
        } else {
            out("   Worker exited with status \(first.terminationStatus) (expected a SIGKILL).")
        }
        let history = try await SQLiteStore(path: options.database).history(of: instanceID)
        out("   History in the file now: \(history.map(\.stepID).joined(separator: ", "))")
        out("   Starting a new worker process on the same file…")
        let second = try runChild(executable, ["replay", "--database", options.database, "--instance-id", instanceID])
        guard second.terminationReason == .exit, second.terminationStatus == 0 else {
            throw ExitCode(1)
        }

        out("\n3. process_order — typed input, validated before an instance exists")
        try await Order.run(database: options.database)

        out("\n4. order_workflow — the Saga pattern: a failure undoes completed steps in reverse order")
        try await Saga.run(database: options.database)

        out("\nInspect the file with: swift run edda list --database \(options.database)")
    }

    func runChild(_ executable: URL, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        return process
    }
}

/// The seed's user_signup.
struct Signup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run user_signup.")
    @OptionGroup var options: DatabaseOption

    func run() async throws {
        try await Self.run(database: options.database)
    }

    static func run(database: String) async throws {
        let app = try makeApp(database: database)
        try app.register(userSignup)
        let (handle, result) = try await app.run { app in
            let handle = try await app.start(userSignup, "ada@example.com", "Ada")
            return (handle, try await handle.result())
        }
        out("   ✓ instance \(handle.instanceID) completed: \(result.json)")
    }
}

/// The seed's Replay Example, resumable by instance ID.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run (or resume) the Replay Example; optionally crash after a step.")
    @OptionGroup var options: DatabaseOption

    @Option(help: "The instance to run or resume.")
    var instanceID = "replay-example"

    @Option(help: "Kill this process with SIGKILL after this step (1-3); 0 never.")
    var crashAfter = 0

    func run() async throws {
        let workflow = longRunningWorkflow(crashAfter: crashAfter)
        let app = try makeApp(database: options.database)
        try app.register(workflow)
        let instanceID = self.instanceID
        let result = try await app.run { app in
            // Same ID and input: a new instance the first time, the existing one (resumed) after a crash.
            try await app.start(workflow, "user_123", instanceID: instanceID).result()
        }
        let history = try await app.history(of: instanceID)
        let fresh = executedSteps.withLock { $0 }
        let replayed = history.map(\.stepID).filter { !fresh.contains($0) }
        say("✓ completed: \(result.json)")
        say("Replayed from history: \(replayed.isEmpty ? "none" : replayed.joined(separator: ", ")); ran fresh: \(fresh.joined(separator: ", "))")
    }
}

/// The seed's process_order with a validated input.
struct Order: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run process_order with an invalid and a valid input.")
    @OptionGroup var options: DatabaseOption

    func run() async throws {
        try await Self.run(database: options.database)
    }

    static func run(database: String) async throws {
        let app = try makeApp(database: database)
        try app.register(processOrder)
        try await app.run { app in
            do {
                _ = try await app.start(processOrder, OrderInput(orderID: "ORDER-7", customerEmail: "ada@example.com", amount: 100))
            } catch let error as EngineError where error.code == .invalidInput {
                out("   ✗ rejected: \(error.message)")
            }
            let result = try await app.start(processOrder, OrderInput(orderID: "ORD-7", customerEmail: "ada@example.com", amount: 100)).result()
            out("   ✓ ORD-7 completed: \(result.json)")
        }
    }
}

/// The seed's Saga example: reservations cancelled in reverse order when payment fails.
struct Saga: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run order_workflow, whose payment fails, and watch the compensations.")
    @OptionGroup var options: DatabaseOption

    func run() async throws {
        try await Self.run(database: options.database)
    }

    static func run(database: String) async throws {
        let app = try makeApp(database: database)
        try app.register(orderWorkflow)
        try await app.run { app in
            let handle = try await app.start(orderWorkflow, "item1", "item2")
            do {
                _ = try await handle.result()
            } catch let error as WorkflowFailedError {
                let instance = try await handle.instance()
                out("   ✓ instance \(handle.instanceID) is \(instance.status): \(error.error)")
            }
        }
    }
}
