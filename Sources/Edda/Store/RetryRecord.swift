public import Foundation

/// What a ``HistoryEventKind/retried`` record holds: who ran a failed instance again, from which
/// step, and the failure that retry moved to the history archive — so that the failure stays in
/// view after its records left the history the next run replays.
///
/// Stored as the record's payload, with snake_case keys:
///
/// ```json
/// {"by": "cli", "compensations_ran": ["compensate:reserve:1"], "failure": {"error": {…}, "sequence": 7, …}, "run": 1, "step": "charge:1"}
/// ```
///
/// Read it from a history record with `try event.payload?.decode(RetryRecord.self)`.
public struct RetryRecord: Codable, Sendable, Hashable {
    /// Who asked: `"cli"` for `edda retry`, `"viewer (…)"` or `"api (…)"` for EddaHTTP (with the
    /// client's address and how it signed in, when known), or what an app passed to
    /// ``EddaClient/retry(_:requestedBy:)`` (`"app"` by default).
    public var requestedBy: String
    /// The step run again, or `nil` when the workflow failed in its own code, outside a step.
    public var step: String?
    /// The run (``WorkflowInstance/runNumber``) the failure belonged to: the archive keeps it under this number.
    public var run: Int
    /// The step IDs of the compensations recorded before the retry: they ran, are not undone, and
    /// do not run again.
    public var compensationsRan: [String]
    /// The step's final failure as it was recorded before it moved to the archive, or `nil` when
    /// there was none (the workflow failed outside a step).
    public var failure: ArchivedFailure?

    public init(requestedBy: String, step: String?, run: Int, compensationsRan: [String] = [], failure: ArchivedFailure? = nil) {
        self.requestedBy = requestedBy
        self.step = step
        self.run = run
        self.compensationsRan = compensationsRan
        self.failure = failure
    }

    /// A step's failure that a retry moved to the archive, as it was recorded.
    public struct ArchivedFailure: Codable, Sendable, Hashable {
        /// The failure record's sequence number in the history it left.
        public var sequence: Int64
        /// The activity's name.
        public var name: String
        /// The final error, if it could be read.
        public var error: ErrorRecord?
        /// The step's attempts, if they could be read.
        public var retry: RetryMetadata?
        /// When the failure was recorded, in milliseconds since 1970.
        public var recordedAtMilliseconds: Int64
        /// How many records moved to the archive: the failure and the step's failed attempts.
        public var archivedRecords: Int

        public init(sequence: Int64, name: String, error: ErrorRecord?, retry: RetryMetadata?, recordedAtMilliseconds: Int64, archivedRecords: Int) {
            self.sequence = sequence
            self.name = name
            self.error = error
            self.retry = retry
            self.recordedAtMilliseconds = recordedAtMilliseconds
            self.archivedRecords = archivedRecords
        }

        /// When the failure was recorded.
        public var recordedAt: Date { Date(timeIntervalSince1970: Double(recordedAtMilliseconds) / 1000) }

        enum CodingKeys: String, CodingKey {
            case sequence, name, error, retry
            case recordedAtMilliseconds = "recorded_at_ms"
            case archivedRecords = "archived_records"
        }
    }

    enum CodingKeys: String, CodingKey {
        case requestedBy = "by"
        case step, run, failure
        case compensationsRan = "compensations_ran"
    }
}

extension RetryRecord.ArchivedFailure {
    /// The failure from its stored columns (JSON text, times in milliseconds). A column that cannot
    /// be read is left out: the archive keeps the original.
    package init(storedSequence sequence: Int64, name: String, error: String?, retry: String?, recordedAt: Int64, archivedRecords: Int) {
        self.init(
            sequence: sequence, name: name, error: error.flatMap { try? JSONPayload(json: $0).decode(ErrorRecord.self) },
            retry: retry.flatMap { try? JSONPayload(json: $0).decode(RetryMetadata.self) }, recordedAtMilliseconds: recordedAt,
            archivedRecords: archivedRecords
        )
    }
}

extension RetryRecord {
    /// The `step_name` of a ``HistoryEventKind/retried`` record.
    package static let storedName = "retry"

    /// The `step_id` of a ``HistoryEventKind/retried`` record: the step run again, or empty.
    package var storedStepID: String { step ?? "" }

    /// The `attempt` of the instance's `count + 1`th ``HistoryEventKind/retried`` record: negative,
    /// so that it never meets a step's outcome (0) or failed attempts (1, 2, …) in the unique index
    /// on (instance, step, attempt).
    package static func storedAttempt(retriesBefore count: Int) -> Int64 {
        -Int64(count + 1)
    }

    /// The `payload` column: this record as JSON.
    package func storedPayload() throws -> String {
        try JSONPayload.encode(self).json
    }
}
