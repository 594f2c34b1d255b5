import ArgumentParser
import Edda
import EddaHTTP
import EddaSQLite
import EddaViewerExample
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `swift run edda-example-viewer`: the viewer with workflows to start, a worker running them, on
/// an embedded SQLite file. Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
@main
struct ExampleViewer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda-example-viewer",
        abstract: """
            Serve Edda's viewer with example workflows (an order saga, an invoice waiting for its payment, an onboarding \
            with a child) and a worker.
            """,
        discussion: """
            On a new database it starts one instance of each (the second order's card is declined, so it is compensated). \
            Start more from the viewer's start forms; send payment.received to the waiting invoice from its page.
            """
    )

    @Option(help: "The SQLite file (created if missing).") var database = "edda-example.sqlite"
    @Option(help: "The address to bind: this machine only by default.") var host = "127.0.0.1"
    @Option(help: "The port (0: any free one).") var port = 8080
    @Flag(help: "Start no sample instances on a new database.") var noSamples = false

    func run() async throws {
        var logger = Logger(label: "edda.example")
        logger.logLevel = .warning
        let app = EddaApp(store: try SQLiteStore(path: database, logger: logger), serviceName: "edda-example", logger: logger)
        try ViewerExample.register(on: app)
        if !noSamples, try await app.instances(matching: InstanceQuery(limit: 1)).instances.isEmpty {
            try await ViewerExample.startSamples(on: app)
        }
        let (host, database) = (host, database)
        let server = EddaHTTP(app: app, configuration: .init(host: host, port: port)).server(logger: logger) { port in
            let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)/"
            FileHandle.standardOutput.write(Data("Edda's viewer on \(database): \(url)  (Ctrl-C stops it)\n".utf8))
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: app), .init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            )
        )
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            FileHandle.standardError.write(Data("Port \(port) on \(host) is in use; pick another with --port (or --port 0 for any free one).\n".utf8))
            throw ExitCode.failure
        }
        FileHandle.standardOutput.write(Data("stopped\n".utf8))
    }
}
