import Logging

/// Events and channel messages from outside a workflow: from a request handler, another service,
/// the CLI. They work without running a worker, from any process on the store.
///
/// **The rule for events nobody waits for:** an event sent to every waiter (``sendEvent(_:)``) goes
/// to the instances waiting for its type at that moment and is then dropped — a later waiter does
/// not see it. An event sent to one instance (``sendEvent(_:to:retention:)``) is kept until that
/// instance waits for its type (for `retention` at most), so sending right after starting an
/// instance is safe. Channel messages are always kept (``Channel/retention``).
extension EddaApp {
    /// Delivers `event` to every instance waiting for its type right now; dropped if none waits.
    ///
    /// Each waiting instance records the event in its history in the same transaction, and is
    /// woken at once (in another process too, where the store can announce it).
    ///
    /// - Returns: The IDs of the instances that received it (empty: nobody was waiting; the event is gone).
    @discardableResult
    public func sendEvent(_ event: CloudEvent) async throws -> [String] {
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

    private func outgoing<Message>(_ channel: Channel<Message>, _ message: Message, target: String?) throws -> OutgoingMessage {
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
