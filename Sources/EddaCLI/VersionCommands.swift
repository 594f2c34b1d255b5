import ArgumentParser
import Edda
import EddaHTTP
import Foundation

struct Versions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Count the unfinished instances of each application version: when an old version is no longer listed, its workers can go.",
        discussion: """
            An app with an applicationVersion records it on each instance it starts, and its worker claims only \
            instances of its version, of the versions it declares compatible, and unversioned ones. A version \
            listed here needs a worker of its own (or one that declares it compatible) until its instances finish. \
            `edda list --version <version>` lists them.
            """
    )

    @OptionGroup var store: StoreOptions

    @Flag(help: "One JSON object per version, one per line.")
    var json = false

    func run() async throws {
        let versions = try await store.withStore(writable: false) { try await $0.applicationVersions() }
        if json {
            for version in versions { JSONOutput.print(VersionText.document(version)) }
            return
        }
        guard !versions.isEmpty else {
            out("No unfinished instances: no version needs a worker.")
            return
        }
        out(Terminal.paint("VERSION".padding(24) + "UNFINISHED".padding(12) + "QUEUED".padding(10) + "OLDEST STARTED", .bold))
        for version in versions {
            out(
                VersionText.name(version.version).padding(24) + "\(version.unfinished)".padding(12) + "\(version.queued)".padding(10)
                    + version.oldestCreatedAt.iso8601
            )
        }
    }
}
