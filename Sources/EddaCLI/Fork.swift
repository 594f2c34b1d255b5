import ArgumentParser
import Edda
import EddaHTTP
import Foundation

struct Fork: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a new instance from another's history up to a step, to run that step and what follows again.",
        discussion: """
            The new instance has the same workflow and input; its history is a copy of the original's records before the \
            step, which it replays, and it runs the step and the rest with the code of the app that runs it. The original \
            is not changed. What the steps run again did in the original (calls, database writes, outbox events) is not \
            undone: the output lists them. edda runs no workflow code: the fork runs when an app that registers its \
            workflow runs on the database.
            """
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance to fork.")
    var instanceID: String

    @Option(help: ArgumentHelp("The step to run again from, as `edda show` lists it (such as charge_card:1).", valueName: "step-id"))
    var fromStep: String

    @Option(name: .customLong("as"), help: ArgumentHelp("The new instance's ID (a new UUID by default).", valueName: "instance-id"))
    var newInstanceID: String?

    @OptionGroup var output: JSONFlag

    func run() async throws {
        let (id, step, newID) = (instanceID, fromStep, newInstanceID)
        let fork = try await store.withApp { app in try await app.fork(id, fromStep: step, instanceID: newID) }
        guard !output.json else { return JSONOutput.print(ForkText.document(of: fork)) }
        out("\(fork.instanceID) forked from \(id) at step \(step): \(fork.copiedRecords) record\(fork.copiedRecords == 1 ? "" : "s") copied.")
        for note in fork.notes { out(note) }
        out("edda runs no workflows: it runs when an app that registers its workflow runs on \(store.displayName).")
    }
}
