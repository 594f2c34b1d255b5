import Logging

/// Instances this worker will not claim because their workflow is not registered here.
extension Worker {
    /// Logs, once at start, the instances left running whose workflow this app has not registered:
    /// this worker never claims them.
    func reportUnresumable() async {
        let registered = Set(registry.names)
        var unresumable: [String: Int] = [:]
        defer {
            // One line for all of them: a deployment missing a workflow may leave thousands.
            if !unresumable.isEmpty {
                logger.warning(
                    "instances left running by workflows this app has not registered; this worker does not claim them",
                    metadata: ["edda.workflows": "\(unresumable.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))"]
                )
            }
        }
        do {
            for status in [InstanceStatus.running, .compensating] {
                var cursor: InstanceCursor?
                repeat {
                    let page = try await store.instances(
                        matching: InstanceQuery(status: status, excludingWorkflowNames: registered, limit: 500, after: cursor)
                    )
                    for instance in page.instances {
                        logger.debug(
                            "instance left running by a workflow this app has not registered",
                            metadata: ["edda.instance.id": "\(instance.instanceID)", "edda.workflow.name": "\(instance.workflowName)"]
                        )
                        outcomes.markUnresumable(instance, registry: registry)
                        unresumable[instance.workflowName, default: 0] += 1
                    }
                    cursor = page.nextCursor
                } while cursor != nil
            }
        } catch {
            logger.warning("cannot list instances of unregistered workflows", metadata: ["edda.error": "\(error)"])
        }
    }
}
