import ArgumentParser
import Edda
import Foundation

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an instance's history as one JSON document, for replaying it against changed code in a test.",
        discussion: """
            The document (format edda.history.v1) holds the instance's ID, workflow, input, status, output or error, and \
            every record of its latest run: sequence, step ID, position, name, kind, payload, error, retry metadata and \
            time. GET /api/instances/{id}/export returns the same bytes. Save it to a file and give it to Replayer \
            (EddaTesting) to check that new workflow code replays it. It holds the workflow's inputs and results: treat \
            it as you treat the database.
            """
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the document to this file instead of standard output.", valueName: "path"))
    var output: String?

    @Flag(help: "Print the document on one line, as the other commands' --json do (it is JSON either way).")
    var json = false

    func run() async throws {
        let id = instanceID
        guard let export = try await store.withStore(writable: false, { store in try await store.export(id) }) else {
            throw CLIError("No instance with ID \(instanceID) in \(store.displayName). `edda list` shows the instances.")
        }
        let data = try export.jsonData(prettyPrinted: !json)
        if let output {
            try data.write(to: URL(fileURLWithPath: output), options: .atomic)
        } else {
            FileHandle.standardOutput.write(data)
        }
    }
}
