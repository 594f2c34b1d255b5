import ArgumentParser
import Edda
import EddaHTTP
import Foundation

struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the queues declared in the store: their limits, and how many of their instances run and wait.",
        discussion: """
            A queue is declared by the apps that register it (their limits as last written). RUNNING counts its \
            instances admitted and not finished, waiting ones included: the places taken. `edda list --queue <name> \
            --status queued` lists the ones waiting, and `edda show` an instance's place in line.
            """
    )

    @OptionGroup var store: StoreOptions

    @Flag(help: "One JSON object per queue, one per line.")
    var json = false

    func run() async throws {
        let queues = try await store.withStore(writable: false) { try await $0.queues() }
        if json {
            for queue in queues { JSONOutput.print(QueueText.document(queue)) }
            return
        }
        guard !queues.isEmpty else {
            out("No queues. An app declares one when it registers it: app.register(Queue(\"name\", concurrency: 5)).")
            return
        }
        out(Terminal.paint("QUEUE".padding(24) + "RUNNING".padding(10) + "QUEUED".padding(10) + "CONCURRENCY".padding(13) + "PER WORKER".padding(12) + "RATE LIMIT", .bold))
        for queue in queues {
            let each = queue.partitioned ? "/key" : ""
            out(
                queue.name.padding(24) + "\(queue.running)".padding(10) + "\(queue.queued)".padding(10)
                    + (queue.concurrency.map { "\($0)\(each)" } ?? "-").padding(13) + (queue.workerConcurrency.map { "\($0)\(each)" } ?? "-").padding(12)
                    + (queue.rateLimit.map { QueueText.rate($0) + (queue.partitioned ? " per key" : "") } ?? "-")
            )
        }
    }

}
