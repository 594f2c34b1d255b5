import Logging

/// Instances this worker will not claim because their workflow is not registered here.
extension Worker {
    /// Logs, once at start, how many instances this service started are left running by workflows
    /// this app has not registered: this worker never claims them.
    ///
    /// Only this service's instances are judged: several services may share one database, each
    /// running its own workflows, and an instance another service started is that service's
    /// business. A versioned worker judges only unversioned instances and those of its versions
    /// (``EddaApp/Configuration/applicationVersion``, ``EddaApp/Configuration/compatibleVersions``):
    /// another version's, whatever their workflow, wait for a worker of that version. What is kept is
    /// a count per workflow name, never a list of instances.
    func reportUnresumable() async {
        let registered = Set(registry.names)
        var unresumable: [String: Int] = [:]
        do {
            for status in [InstanceStatus.running, .compensating] {
                var cursor: InstanceCursor?
                repeat {
                    let page = try await store.instances(
                        matching: InstanceQuery(
                            status: status, serviceName: serviceName, excludingWorkflowNames: registered, limit: 500, after: cursor,
                            // A versioned worker judges only the instances it could claim: another
                            // version's are its workers' business, left alone until one runs them.
                            applicationVersions: configuration.claimedVersions.map { Set($0.map(Optional.some)).union([nil]) }
                        )
                    )
                    for instance in page.instances { unresumable[instance.workflowName, default: 0] += 1 }
                    cursor = page.nextCursor
                } while cursor != nil
            }
        } catch {
            logger.warning("cannot list instances of unregistered workflows", metadata: ["edda.error": "\(error)"])
        }
        guard !unresumable.isEmpty else { return }
        outcomes.noteUnresumable(unresumable)
        // One line for all of them: a deployment missing a workflow may leave thousands.
        logger.warning(
            "instances this service started are left running by workflows this app has not registered; this worker does not claim them",
            metadata: [
                "edda.service": "\(serviceName)",
                "edda.workflows": "\(unresumable.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))",
            ]
        )
    }
}
