/// The seam between the engine and a database: everything the engine, a worker, the CLI and the
/// viewer need, split by role.
///
/// - ``InstanceReader``: reads instances, history, pages of instances and counts.
/// - ``WorkflowStore``: the write path of a run — create, append, mark compensating, finish —
///   every write fenced by the run's ``Lease``.
/// - ``WorkQueue``: how workers share the work — claim ready instances with a lease, renew the
///   leases held, release one, and hear when work becomes ready.
///
/// - ``Mailbox``: events and channel messages, consumed exactly once into history.
/// - ``PruningStore``: deletes what a ``RetentionPolicy`` no longer keeps, in small batches.
/// - ``ScheduleStore``: schedules and where their ticking stands, written by compare-and-set.
///
/// Backends: `SQLiteStore` in `EddaSQLite` (the embedded default). Every backend passes the same
/// conformance suite (`Tests/StoreConformance`).
public protocol Store: WorkflowStore, WorkQueue, Mailbox, PruningStore, ScheduleStore {}
