// A worker process for the crash tests: runs instances of a many-step workflow on a SQLite file,
// appending one line per activity execution to a side file. The tests kill it with SIGKILL in the
// middle, run it again, and compare the side file with the store.
//
// Usage: EddaCrashWorker <database> <executions-file> <instances> <steps> <step-delay-ms>

#if canImport(Glibc)
import Glibc
#endif
import Edda
import EddaSQLite
import Foundation
import Logging

let arguments = CommandLine.arguments
guard arguments.count == 6, let instances = Int(arguments[3]), let steps = Int(arguments[4]), let delay = Int(arguments[5]) else {
    FileHandle.standardError.write(Data("usage: EddaCrashWorker <database> <executions-file> <instances> <steps> <step-delay-ms>\n".utf8))
    exit(2)
}
let databasePath = arguments[1]
let executionsPath = arguments[2]

/// Appends one line with O_APPEND: the line is in the kernel's page cache when write returns,
/// so it survives the SIGKILL of this process.
@Sendable func recordExecution(_ line: String) {
    let fd = open(executionsPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    precondition(fd >= 0, "cannot open \(executionsPath)")
    _ = (line + "\n").withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

let step = Activity("step", retry: .noRetry) { (ctx, index: Int) -> Int in
    recordExecution("\(ctx.instanceID) \(ctx.stepID)")
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

var logger = Logger(label: "edda.crash-worker")
logger.logLevel = .warning
let app = EddaApp(store: try SQLiteStore(path: databasePath, logger: logger), serviceName: "crash-test", logger: logger)
app.register(manySteps)
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
