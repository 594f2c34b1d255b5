public import Foundation

/// An instance's history as one JSON document: what `edda export <instance-id>` prints and
/// `GET /api/instances/{id}/export` returns, and what `Replayer` (in `EddaTesting`) replays.
///
/// The format (`"format": "edda.history.v1"`), keys sorted, times in ISO 8601 (UTC, milliseconds):
///
/// ```json
/// {
///   "created_at": "2026-12-05T21:00:00.000Z",
///   "error": null,
///   "format": "edda.history.v1",
///   "history": [
///     {
///       "error": null,
///       "kind": "ActivityCompleted",
///       "name": "price",
///       "payload": 100,
///       "position": 1,
///       "recorded_at": "2026-12-05T21:00:00.120Z",
///       "retry": null,
///       "sequence": 1,
///       "step_id": "price:1"
///     }
///   ],
///   "input": ["order-1"],
///   "instance_id": "order-1",
///   "output": null,
///   "run": 1,
///   "service_name": "shop",
///   "status": "running",
///   "updated_at": "2026-12-05T21:00:00.120Z",
///   "workflow_name": "checkout"
/// }
/// ```
///
/// - `input` is the workflow's arguments as a JSON array; `output` the result of a completed instance.
/// - `error` (here and on a record) is `{"error_type": …, "message": …}`.
/// - Each record of ``history`` is a ``HistoryEvent``: `kind` is a ``HistoryEventKind`` raw value,
///   `position` is `null` for a step of a concurrent task, `payload` the activity's result or the
///   recorded value (JSON), `retry` the ``RetryMetadata``.
/// - Only the latest run's history is exported (continue-as-new archives earlier runs).
///
/// An export holds the workflow's inputs and results: treat it as you treat the database.
public struct HistoryExport: Sendable {
    /// The format this version writes and reads.
    public static let currentFormat = "edda.history.v1"

    /// The document's format: ``currentFormat``.
    public var format: String
    public var instanceID: String
    public var workflowName: String
    public var serviceName: String
    /// The run the history belongs to: 1, then one more with each continue-as-new.
    public var runNumber: Int
    /// The status when exported.
    public var status: InstanceStatus
    /// The workflow's arguments, as a JSON array.
    public var input: JSONPayload
    /// The result, for a completed instance.
    public var output: JSONPayload?
    /// The final error, for a failed or cancelled instance.
    public var error: ErrorRecord?
    public var createdAt: Date
    public var updatedAt: Date
    /// The records of the latest run, in append order.
    public var history: [HistoryEvent]

    /// The export of `instance` with its history.
    public init(instance: WorkflowInstance, history: [HistoryEvent]) {
        self.format = Self.currentFormat
        self.instanceID = instance.instanceID
        self.workflowName = instance.workflowName
        self.serviceName = instance.serviceName
        self.runNumber = instance.runNumber
        self.status = instance.status
        self.input = instance.input
        self.output = instance.output
        self.error = instance.error
        self.createdAt = instance.createdAt
        self.updatedAt = instance.updatedAt
        self.history = history
    }

    /// The document as JSON with sorted keys, ending with a newline.
    ///
    /// - Parameter prettyPrinted: Indented, one key a line (the default, as `edda export` prints it
    ///   and the HTTP API returns it), or all on one line (`edda export --json`).
    /// - Throws: `EncodingError` when a stored payload is not JSON (only a hand-edited database holds one).
    public func jsonData(prettyPrinted: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = prettyPrinted ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Reads an exported document.
    ///
    /// - Throws: ``EngineError`` ``EngineError/Code-swift.struct/corruptHistory`` when `data` is not an
    ///   export of a format this version reads, naming what is wrong.
    public init(jsonData data: Data) throws {
        do {
            self = try JSONDecoder().decode(HistoryExport.self, from: data)
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(
                .corruptHistory,
                "The data is not an Edda history export (\(Self.currentFormat)): \(error). Export a history with "
                    + "`edda export <instance-id>` or GET /api/instances/{id}/export.",
                cause: error
            )
        }
    }
}

// MARK: - Codable

extension HistoryExport: Codable {
    enum CodingKeys: String, CodingKey {
        case format
        case instanceID = "instance_id"
        case workflowName = "workflow_name"
        case serviceName = "service_name"
        case runNumber = "run"
        case status, input, output, error
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case history
    }

    enum RecordKeys: String, CodingKey {
        case sequence
        case stepID = "step_id"
        case position, name, kind, payload, error, retry
        case recordedAt = "recorded_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(String.self, forKey: .format)
        guard format == Self.currentFormat else {
            throw EngineError(
                .corruptHistory,
                "The export's format is '\(format)'; this version of Edda reads \(Self.currentFormat). Export the history again with this version."
            )
        }
        instanceID = try container.decode(String.self, forKey: .instanceID)
        workflowName = try container.decode(String.self, forKey: .workflowName)
        serviceName = try container.decode(String.self, forKey: .serviceName)
        runNumber = try container.decode(Int.self, forKey: .runNumber)
        let statusText = try container.decode(String.self, forKey: .status)
        guard let status = InstanceStatus(rawValue: statusText) else {
            throw DecodingError.dataCorruptedError(forKey: .status, in: container, debugDescription: "Unknown status '\(statusText)'")
        }
        self.status = status
        input = try container.decode(JSONValue.self, forKey: .input).payload()
        output = try container.decodeIfPresent(JSONValue.self, forKey: .output).map { try $0.payload() }
        error = try container.decodeIfPresent(ErrorRecord.self, forKey: .error)
        createdAt = try Self.date(container, .createdAt)
        updatedAt = try Self.date(container, .updatedAt)
        var records = try container.nestedUnkeyedContainer(forKey: .history)
        var history: [HistoryEvent] = []
        while !records.isAtEnd {
            let record = try records.nestedContainer(keyedBy: RecordKeys.self)
            let kindText = try record.decode(String.self, forKey: .kind)
            guard let kind = HistoryEventKind(rawValue: kindText) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .kind, in: record, debugDescription: "Unknown record kind '\(kindText)' (exported by a newer version of Edda?)"
                )
            }
            history.append(
                HistoryEvent(
                    sequence: try record.decode(Int64.self, forKey: .sequence), instanceID: instanceID,
                    stepID: try record.decode(String.self, forKey: .stepID), position: try record.decodeIfPresent(Int.self, forKey: .position),
                    name: try record.decode(String.self, forKey: .name), kind: kind,
                    payload: try record.decodeIfPresent(JSONValue.self, forKey: .payload).map { try $0.payload() },
                    error: try record.decodeIfPresent(ErrorRecord.self, forKey: .error),
                    retry: try record.decodeIfPresent(RetryMetadata.self, forKey: .retry), recordedAt: try Self.date(record, .recordedAt)
                )
            )
        }
        self.history = history
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(format, forKey: .format)
        try container.encode(instanceID, forKey: .instanceID)
        try container.encode(workflowName, forKey: .workflowName)
        try container.encode(serviceName, forKey: .serviceName)
        try container.encode(runNumber, forKey: .runNumber)
        try container.encode(status.rawValue, forKey: .status)
        try container.encode(try JSONValue(input), forKey: .input)
        try container.encode(try output.map(JSONValue.init), forKey: .output)
        try container.encode(error, forKey: .error)
        try container.encode(Self.text(createdAt), forKey: .createdAt)
        try container.encode(Self.text(updatedAt), forKey: .updatedAt)
        var records = container.nestedUnkeyedContainer(forKey: .history)
        for event in history {
            var record = records.nestedContainer(keyedBy: RecordKeys.self)
            try record.encode(event.sequence, forKey: .sequence)
            try record.encode(event.stepID, forKey: .stepID)
            try record.encode(event.position, forKey: .position)
            try record.encode(event.name, forKey: .name)
            try record.encode(event.kind.rawValue, forKey: .kind)
            try record.encode(try event.payload.map(JSONValue.init), forKey: .payload)
            try record.encode(event.error, forKey: .error)
            try record.encode(event.retry, forKey: .retry)
            try record.encode(Self.text(event.recordedAt), forKey: .recordedAt)
        }
    }

    private static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// `2026-12-05T21:00:00.120Z`: whole milliseconds, rounded (the formatter truncates, and a stored
    /// millisecond is not always exact as a `Double`).
    private static func text(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let whole = Date(timeIntervalSince1970: Double(fraction < 0 ? seconds - 1 : seconds)).formatted(.iso8601)
        let millis = fraction < 0 ? fraction + 1000 : fraction
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - String(millis).count) + String(millis) + "Z"
    }

    private static func date<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, _ key: Key) throws -> Date {
        let text = try container.decode(String.self, forKey: key)
        guard let date = try? timeStyle.parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "'\(text)' is not an ISO 8601 time")
        }
        // Whole milliseconds, as stored: parsing may land just below, which would print a millisecond less.
        return Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }
}

// MARK: - Reading an export from a store

extension InstanceReader {
    /// The export of an instance: its row and its history, or `nil` when no instance has this ID.
    ///
    /// The two are read one after the other: for an instance that is running, a step may be
    /// recorded in between, so its history can be one record ahead of its status.
    ///
    /// - Throws: a ``StoreError`` when the store cannot be read (``StoreError/Code-swift.struct/corruptRecord``
    ///   for a record this version cannot read).
    public func export(_ instanceID: String) async throws -> HistoryExport? {
        guard let instance = try await instance(instanceID) else { return nil }
        return HistoryExport(instance: instance, history: try await history(of: instanceID))
    }
}
