import Foundation
import Logging

/// Events and channel messages from outside a workflow: from a request handler, another service,
/// the CLI. They work without running a worker, from any process on the store.
///
/// **The rule for events nobody waits for:** an event sent to every waiter (``sendEvent(_:)``) goes
/// to the instances waiting for its type at that moment and is then dropped — a later waiter does
/// not see it. An event sent to one instance (``sendEvent(_:to:retention:)``) is kept until that
/// instance waits for its type (for `retention` at most), so sending right after starting an
/// instance is safe. Channel messages are always kept (``Channel/retention``).
extension EddaClient {
    /// Delivers `event` to every instance waiting for its type right now; dropped if none waits.
    ///
    /// Each waiting instance records the event in its history in the same transaction, and is
    /// woken at once (in another process too, where the store can announce it).
    ///
    /// - Returns: The IDs of the instances that received it (empty: nobody was waiting; the event is gone).
    @discardableResult
    public func sendEvent(_ event: CloudEvent) async throws -> [String] {
        try Self.checkNotReserved(event.type)
        let message = OutgoingMessage(
            channel: event.type, kind: .event, target: nil, envelope: MessageEnvelope(event, sender: nil), retention: .zero
        )
        guard case .published(_, let deliveredTo) = try await store.publish(message, recordedAs: nil, now: configuration.clock.now()) else {
            return []
        }
        logger.debug("event sent", metadata: ["edda.event.type": "\(event.type)", "edda.count": "\(deliveredTo.count)"])
        return deliveredTo
    }

    /// Delivers `event` to one instance: at once if it waits for the event's type, or when it next
    /// does, as long as that is within `retention`.
    ///
    /// - Returns: Whether the instance was waiting and received it now (`false`: it is kept).
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound`` or
    ///   ``EngineError/Code-swift.struct/alreadyFinished``; nothing is kept then.
    @discardableResult
    public func sendEvent(_ event: CloudEvent, to instanceID: String, retention: Duration = .seconds(7 * 86_400)) async throws -> Bool {
        try Self.checkNotReserved(event.type)
        let message = OutgoingMessage(
            channel: event.type, kind: .event, target: instanceID, envelope: MessageEnvelope(event, sender: nil), retention: retention
        )
        let outcome = try await store.publish(message, recordedAs: nil, now: configuration.clock.now())
        if let error = Self.targetError(outcome, target: instanceID, what: "event '\(event.type)'") { throw error }
        guard case .published(_, let deliveredTo) = outcome else { return false }
        return !deliveredTo.isEmpty
    }

    /// Publishes `message` on a broadcast or competing channel.
    ///
    /// - Returns: The instances it was delivered to now (broadcast: every waiting subscriber;
    ///   competing: at most one). It is kept for the channel's retention in any case (broadcast),
    ///   or until a subscriber takes it (competing).
    /// - Throws: ``ChannelModeError`` when the channel is direct (use ``send(_:to:_:)``) or was
    ///   first used in another mode.
    @discardableResult
    public func publish<Message>(_ channel: Channel<Message>, _ message: Message) async throws -> [String] {
        guard channel.mode != .direct else {
            throw ChannelModeError(channel: channel.name, registered: .direct, requested: .broadcast)
        }
        let outcome = try await store.publish(try outgoing(channel, message, target: nil), recordedAs: nil, now: configuration.clock.now())
        guard case .published(_, let deliveredTo) = outcome else { return [] }
        return deliveredTo
    }

    /// Sends `message` on a direct channel to one instance; kept until it receives it (or for the
    /// channel's retention).
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound`` or
    ///   ``EngineError/Code-swift.struct/alreadyFinished``; ``ChannelModeError`` for a channel that is not direct.
    public func send<Message>(_ channel: Channel<Message>, to instanceID: String, _ message: Message) async throws {
        guard channel.mode == .direct else {
            throw ChannelModeError(channel: channel.name, registered: channel.mode, requested: .direct)
        }
        let outcome = try await store.publish(try outgoing(channel, message, target: instanceID), recordedAs: nil, now: configuration.clock.now())
        if let error = Self.targetError(outcome, target: instanceID, what: "message on channel '\(channel.name)'") { throw error }
    }

    /// Makes every event of `type` that arrives through ``ingest(_:)`` (the HTTP ingress) start an
    /// instance of `workflow`, with the event's JSON data as its argument. The instance's ID is
    /// `<workflow name>/<event ID>@<event source>` (CloudEvents identify an event by its source and
    /// ID; `%` and `@` in the ID are percent-encoded, and a name past 255 bytes becomes
    /// `<workflow name>/#<digest>`): an event delivered twice (CloudEvents delivery is at least
    /// once) starts one instance, and two sources may use the same IDs. Registers the workflow.
    public func startOnEvent<Input, Output>(_ type: String, _ workflow: Workflow<Input, Output>) throws {
        try registry.register(workflow)
        registry.addEventHandler(workflow.name, for: type)
    }

    /// Takes in an event from outside — what the HTTP ingress does with each CloudEvent it accepts:
    /// - with the extension attribute `eddainstanceid`, it goes to that instance
    ///   (``sendEvent(_:to:retention:)``: delivered now or kept for it);
    /// - otherwise it starts the workflows registered for its type (``startOnEvent(_:_:)``) and is
    ///   delivered to every instance waiting for the type (``sendEvent(_:)``).
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/invalidInput`` when a
    ///   handler's workflow cannot take the event's data (nothing is started or delivered), or the
    ///   errors of ``sendEvent(_:to:retention:)``.
    public func ingest(_ event: CloudEvent) async throws -> EventReceipt {
        if let target = event.extensions[Self.instanceExtension] {
            let deliveredNow = try await sendEvent(event, to: target)
            return EventReceipt(deliveredTo: deliveredNow ? [target] : [], keptFor: deliveredNow ? nil : target, started: [])
        }
        var inputs: [(name: String, input: JSONPayload)] = []
        for name in registry.eventHandlers(for: event.type) {
            guard let data = event.data, let text = String(data: data, encoding: .utf8) else {
                throw EngineError(.invalidInput, "Event \(event.id) of type '\(event.type)' has no JSON data for workflow '\(name)'. Nothing was started.")
            }
            inputs.append((name, JSONPayload(json: "[\(text)]")))
        }
        // Check every handler's input before starting any.
        for (name, input) in inputs {
            guard let registration = registry.registration(named: name) else { continue }
            do {
                try registration.checkInput(input)
            } catch {
                throw EngineError(
                    .invalidInput, "Event \(event.id) of type '\(event.type)' is not valid input for workflow '\(name)': \(error). Nothing was started.",
                    cause: error
                )
            }
        }
        // The sender's trace context (a `traceparent` extension, say) is the handlers' own.
        let traceContext = observer.traceContext(fromCarrier: event.extensions)
        var started: [String] = []
        for (name, input) in inputs {
            let id = Self.handlerInstanceID(name, event)
            try Self.checkInstanceID(id)
            started.append(try await create(name, input: input, instanceID: id, traceContext: traceContext))
        }
        return EventReceipt(deliveredTo: try await sendEvent(event), keptFor: nil, started: started)
    }

    /// `<workflow>/<event id>@<source>`, with `%` and `@` in the event ID percent-encoded so that no
    /// two (ID, source) pairs give one name; past the 255 bytes an instance ID may have, a digest of
    /// both stands for them.
    static func handlerInstanceID(_ workflow: String, _ event: CloudEvent) -> String {
        let escapedID = event.id.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "@", with: "%40")
        let id = "\(workflow)/\(escapedID)@\(event.source)"
        guard id.utf8.count > 255 else { return id }
        // FNV-1a: stable across processes and versions (Swift's Hasher is seeded per process).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(escapedID.utf8) + [0] + Array(event.source.utf8) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\(workflow)/#\(String(hash, radix: 16))"
    }

    /// The CloudEvents extension attribute that routes an event to one instance: `eddainstanceid`.
    public static let instanceExtension = "eddainstanceid"

    private func outgoing<Message>(_ channel: Channel<Message>, _ message: Message, target: String?) throws -> OutgoingMessage {
        try Self.checkNotReserved(channel.name)
        let event: CloudEvent
        do {
            event = try CloudEvent(type: channel.name, source: "edda:\(serviceName)", time: configuration.clock.now(), json: message)
        } catch {
            throw EngineError(.encodingFailed, "The message for channel '\(channel.name)' could not be encoded as JSON.", cause: error)
        }
        return OutgoingMessage(
            channel: channel.name, kind: MessageKind(channel.mode), target: target, envelope: MessageEnvelope(event, sender: nil),
            retention: channel.retention
        )
    }

    /// Event types and channel names starting with `edda.` are Edda's own (a child's report travels
    /// as `edda.child/<id>`): refused, so that nobody can forge one.
    static func checkNotReserved(_ name: String) throws {
        guard !name.hasPrefix("edda.") else {
            throw EngineError(.invalidInput, "'\(name)': event types and channel names starting with 'edda.' are reserved for Edda. Nothing was sent.")
        }
    }

    /// The error for a message to one instance that does not exist or has finished.
    static func targetError(_ outcome: PublishOutcome, target: String, what: String) -> EngineError? {
        switch outcome {
        case .published:
            nil
        case .targetNotFound:
            EngineError(.instanceNotFound, "No workflow instance has ID \(target); the \(what) was not sent.", instanceID: target)
        case .targetFinished(let status):
            EngineError(.alreadyFinished, "Instance \(target) has already \(status); the \(what) was not sent.", instanceID: target)
        }
    }
}

/// What ``EddaClient/ingest(_:)`` did with an event.
public struct EventReceipt: Sendable, Hashable {
    /// The instances that received it now.
    public var deliveredTo: [String]
    /// The instance it is kept for, when it was sent to one that does not wait for it yet.
    public var keptFor: String?
    /// The instances it started (``EddaClient/startOnEvent(_:_:)``).
    public var started: [String]

    public init(deliveredTo: [String], keptFor: String?, started: [String]) {
        self.deliveredTo = deliveredTo
        self.keptFor = keptFor
        self.started = started
    }
}

