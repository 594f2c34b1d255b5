package import CoreMetrics
import Synchronization

/// The metrics an app reports through swift-metrics, created once (per workflow for those with a
/// `workflow` dimension), never per step. The application bootstraps the backend it likes
/// (Prometheus, OpenTelemetry…); with none, they cost a no-op call.
///
/// | Name | Kind | Dimensions | What |
/// |---|---|---|---|
/// | `edda_instances_started_total` | counter | `workflow` | instances this app created |
/// | `edda_instances_completed_total` | counter | `workflow` | runs that completed |
/// | `edda_instances_failed_total` | counter | `workflow` | runs that failed |
/// | `edda_instances_cancelled_total` | counter | `workflow` | runs that ended cancelled |
/// | `edda_steps_executed_total` | counter | `workflow` | activity steps run fresh (each once, however many attempts) |
/// | `edda_steps_replayed_total` | counter | `workflow` | steps answered from history |
/// | `edda_attempts_retried_total` | counter | `workflow` | failed attempts that were scheduled again |
/// | `edda_compensations_run_total` | counter | `workflow` | compensations run fresh |
/// | `edda_leases_lost_total` | counter | | runs stopped because their lease was lost |
/// | `edda_instances_in_flight` | gauge | | instances running in this worker |
/// | `edda_instances_waiting` | gauge | | instances in the store waiting, released, for a time or a message (read every lease renewal interval) |
/// | `edda_step_duration_seconds` | timer | `workflow` | one attempt of an activity or compensation, its commit included |
/// | `edda_workflow_duration_seconds` | timer | `workflow` | from an instance's creation to its end |
/// | `edda_start_to_first_step_seconds` | timer | `workflow` | from creation to the start of its first run |
/// | `edda_claim_to_run_seconds` | timer | | from a claim to the run's start |
/// | `edda_commit_duration_seconds` | timer | `backend` | one group commit (SQLite) or write batch (PostgreSQL) |
/// | `edda_rows_pruned_total` | counter | `table` | rows the retention pruner deleted (made by `Pruner`) |
package final class EngineMetrics: Sendable {
    /// The metrics of one workflow.
    package struct Workflow: Sendable {
        package let started, completed, failed, cancelled: Counter
        package let stepsExecuted, stepsReplayed, attemptsRetried, compensationsRun: Counter
        package let stepDuration, workflowDuration, startToFirstStep: CoreMetrics.Timer
    }

    private let factory: any MetricsFactory
    private let byWorkflow = Mutex<[String: Workflow]>([:])
    package let leasesLost: Counter
    package let inFlight: Gauge
    package let waiting: Gauge
    package let claimToRun: CoreMetrics.Timer

    package init(factory: any MetricsFactory) {
        self.factory = factory
        leasesLost = Counter(label: "edda_leases_lost_total", factory: factory)
        inFlight = Gauge(label: "edda_instances_in_flight", factory: factory)
        waiting = Gauge(label: "edda_instances_waiting", factory: factory)
        claimToRun = CoreMetrics.Timer(label: "edda_claim_to_run_seconds", factory: factory)
    }

    /// `edda_commit_duration_seconds` for the store `backend` (`sqlite`, `postgres`): the stores make
    /// it through the global `MetricsSystem` when they are created, since a store serves apps with
    /// different factories, and hand it to their ``Batcher``.
    package static func commitDuration(backend: String) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: "edda_commit_duration_seconds", dimensions: [("backend", backend)])
    }

    /// The metrics of `workflow`, made on first use and kept.
    package func workflow(_ name: String) -> Workflow {
        if let known = byWorkflow.withLock({ $0[name] }) { return known }
        let dimensions = [("workflow", name)]
        func counter(_ label: String) -> Counter { Counter(label: label, dimensions: dimensions, factory: factory) }
        func timer(_ label: String) -> CoreMetrics.Timer { CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory) }
        let made = Workflow(
            started: counter("edda_instances_started_total"), completed: counter("edda_instances_completed_total"),
            failed: counter("edda_instances_failed_total"), cancelled: counter("edda_instances_cancelled_total"),
            stepsExecuted: counter("edda_steps_executed_total"), stepsReplayed: counter("edda_steps_replayed_total"),
            attemptsRetried: counter("edda_attempts_retried_total"), compensationsRun: counter("edda_compensations_run_total"),
            stepDuration: timer("edda_step_duration_seconds"), workflowDuration: timer("edda_workflow_duration_seconds"),
            startToFirstStep: timer("edda_start_to_first_step_seconds")
        )
        return byWorkflow.withLock { cache in
            if let raced = cache[name] { return raced }
            cache[name] = made
            return made
        }
    }
}
