public import Foundation

/// The built `edda` CLI, run as a real process by the tests.
public enum EddaBinary {
    /// What a run printed and how it ended.
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
        public var error: String
    }

    public struct NotBuilt: Error, CustomStringConvertible {
        /// The executable looked for.
        public var name = "edda"
        public var description: String { "the \(name) binary is not next to the tests; run `swift build --build-tests` first" }
    }

    /// The binary: next to the test bundle, or in `.build/debug`; `name` finds another of the
    /// package's executables there (`edda-example-viewer`).
    public static func executable(named name: String = "edda") throws -> URL {
        let candidates = [
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug"),
        ]
        guard let found = candidates.map({ $0.appendingPathComponent(name) }).first(where: { FileManager.default.isExecutableFile(atPath: $0.path) })
        else { throw NotBuilt(name: name) }
        return found
    }

    /// Runs `edda` with `arguments` (and `environment` added to this process's), on a thread of its
    /// own so that a server in the test process keeps its threads while the CLI talks to it.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        try await runCommand(try executable().path, arguments, environment: environment)
    }

    /// Runs any program the same way (`runuser -u nobody -- edda …`, say).
    public static func runCommand(_ path: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        let executable = URL(fileURLWithPath: path)
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    let process = Process()
                    process.executableURL = executable
                    process.arguments = arguments
                    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                    let (output, error) = (Pipe(), Pipe())
                    process.standardOutput = output
                    process.standardError = error
                    try process.run()
                    // Both pipes drain while it runs: a full one would stall it.
                    nonisolated(unsafe) var errorData = Data()
                    let errorRead = DispatchGroup()
                    DispatchQueue.global().async(group: errorRead) { errorData = error.fileHandleForReading.readDataToEndOfFile() }
                    let outputData = output.fileHandleForReading.readDataToEndOfFile()
                    errorRead.wait()
                    process.waitUntilExit()
                    continuation.resume(
                        returning: Result(
                            status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
                            error: String(decoding: errorData, as: UTF8.self)
                        )
                    )
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
