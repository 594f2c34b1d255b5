import Foundation

/// Events and channels: a workflow waits for something from outside, or from another workflow,
/// holding no lease, task or memory while it waits.
///
/// ```swift
/// let checkout = Workflow("checkout") { (ctx, order: Order) -> String in
///     try await reserveStock(ctx, order)
///     do {
///         let paid = try await ctx.waitForEvent(type: "payment.completed", as: Payment.self, timeout: .seconds(3600))
///         return try await ship(ctx, order, paid.data)
///     } catch is WaitTimeoutError {
///         try await releaseStock(ctx, order)
///         return "expired"
///     }
/// }
/// // elsewhere, in any process on the store:
/// try await app.sendEvent(CloudEvent(type: "payment.completed", source: "/payments", json: payment), to: orderID)
/// ```
///
/// Each wait is a step (`edda.event:1`, `edda.receive:1`, …). What it received — or that it timed
/// out — is recorded in the transaction that consumed the message, so a replay returns the same
/// message and a message is never taken twice. While nothing has come, the run ends and the
/// instance is released; a delivery makes it ready again at once, in this process or another.
extension WorkflowContext {
    /// Waits for a CloudEvent of `type`, sent with ``EddaApp/sendEvent(_:)`` (to every instance
    /// waiting for the type at that moment) or ``EddaApp/sendEvent(_:to:retention:)`` (to this
    /// instance, kept until it waits).
    ///
    /// - Parameters:
    ///   - type: The event type, such as `"payment.completed"`.
    ///   - as: The type of the event's JSON data.
    ///   - timeout: How long to wait, from the first time this call runs; `nil` waits for as long as it takes.
    ///   - eventID: An explicit step ID. Defaults to `edda.event:N`.
    /// - Throws: ``WaitTimeoutError`` (recorded) when the timeout passes first; ``EngineError`` with
    ///   code ``EngineError/Code-swift.struct/undecodableMessage`` when the data is not a `Payload`.
    public func waitForEvent<Payload: Decodable & Sendable>(
        type: String, as: Payload.Type = Payload.self, timeout: Duration? = nil, eventID: String? = nil
    ) async throws -> ReceivedEvent<Payload> {
        let delivered = try await awaitMessage(name: "edda.event", channel: type, kind: .event, timeout: timeout, explicitID: eventID)
        let envelope = delivered.message
        return ReceivedEvent(
            id: envelope.id, source: envelope.source, type: envelope.type, subject: envelope.subject,
            time: Date(storedMilliseconds: envelope.timeMilliseconds), dataContentType: envelope.dataContentType,
            data: try decodeData(of: envelope, as: Payload.self, from: type), extensions: envelope.extensions
        )
    }

    /// Subscribes to a broadcast channel: the next ``receive(_:timeout:receiveID:)`` takes the first
    /// message published after this call, even if the workflow was busy when it came. Without it,
    /// the first receive subscribes. For competing and direct channels it only checks the mode.
    public func subscribe<Message>(_ channel: Channel<Message>) async throws {
        let reservation = try reserveStep(name: "edda.subscribe", explicitID: nil)
        let position: Int64
        if let event = try recordedStep(reservation, kind: .valueRecorded) {
            position = try decodeRecorded(event, as: Int64.self)
        } else {
            position = try await mailbox { store in try await store.subscribe(to: channel.name, mode: channel.mode, now: environment.clock.now()) }
            try await appendRecord(reservation, kind: .valueRecorded, payload: try JSONPayload.encode(position))
        }
        if channel.mode == .broadcast { advanceChannelCursor(channel.name, to: position) }
    }

    /// Receives the next message on `channel`: for broadcast, the first one after this instance's
    /// position; for competing, the oldest one nobody took; for direct, the oldest one sent to this instance.
    ///
    /// - Parameters:
    ///   - timeout: How long to wait, from the first time this call runs; `nil` waits for as long as it takes.
    ///   - receiveID: An explicit step ID. Defaults to `edda.receive:N`.
    /// - Throws: ``WaitTimeoutError`` (recorded); ``ChannelModeError`` (the run fails); ``EngineError``
    ///   with code ``EngineError/Code-swift.struct/undecodableMessage``.
    public func receive<Message>(_ channel: Channel<Message>, timeout: Duration? = nil, receiveID: String? = nil) async throws -> ChannelMessage<Message> {
        let delivered = try await awaitMessage(
            name: "edda.receive", channel: channel.name, kind: MessageKind(channel.mode), timeout: timeout, explicitID: receiveID
        )
        let envelope = delivered.message
        return ChannelMessage(
            id: envelope.id, channel: channel.name, data: try decodeData(of: envelope, as: Message.self, from: channel.name),
            publishedAt: Date(storedMilliseconds: envelope.timeMilliseconds), sender: envelope.sender, sequence: delivered.seq
        )
    }

    /// Publishes `message` on a broadcast or competing channel, exactly once: the message and this
    /// step's record commit together.
    ///
    /// - Parameter publishID: An explicit step ID. Defaults to `edda.publish:N`.
    /// - Throws: ``ChannelModeError`` (the run fails), including for a direct channel: use ``send(_:to:_:sendID:)``.
    public func publish<Message>(_ channel: Channel<Message>, _ message: Message, publishID: String? = nil) async throws {
        try await publishMessage(name: "edda.publish", channel: channel, target: nil, message: message, explicitID: publishID)
    }

    /// Sends `message` on a direct channel to one instance, exactly once. It is kept until that
    /// instance receives it (or for the channel's retention).
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound`` or
    ///   ``EngineError/Code-swift.struct/alreadyFinished`` (nothing sent, nothing recorded: a replay
    ///   tries again); ``ChannelModeError`` for a channel that is not direct (the run fails).
    public func send<Message>(_ channel: Channel<Message>, to instanceID: String, _ message: Message, sendID: String? = nil) async throws {
        try await publishMessage(name: "edda.send", channel: channel, target: instanceID, message: message, explicitID: sendID)
    }

    // MARK: - Engine side

    /// The step of a wait: its recorded outcome, or a message consumed now, or the end of the run
    /// (waiting) when nothing has come.
    func awaitMessage(name: String, channel: String, kind: MessageKind, timeout: Duration?, explicitID: String?) async throws
        -> DeliveredMessage
    {
        let reservation = try reserveStep(name: name, explicitID: explicitID)
        let record: HistoryEvent
        if case .replay(let recorded) = reservation.decision, recorded.kind == .waitTimedOut {
            record = recorded
        } else if let recorded = try recordedStep(reservation, kind: .messageReceived) {
            record = recorded
        } else {
            let now = environment.clock.now()
            let wait = MessageWait(
                instanceID: instanceID, stepID: reservation.stepID, position: reservation.position, name: name, channel: channel,
                kind: kind, afterSequence: kind == .broadcast ? channelCursor(channel) : nil,
                deadline: timeout.map { now.addingTimeInterval($0.seconds) }
            )
            switch try await mailbox({ store in try await store.receive(wait, lease: lease, now: now) }) {
            case .recorded(let event):
                record = event
            case .waiting(let deadline):
                // Released until the deadline or a delivery, whichever comes first.
                stop(.waiting(until: deadline ?? .distantFuture))
                throw RunWaiting(until: deadline ?? .distantFuture, instanceID: instanceID)
            }
        }
        if record.kind == .waitTimedOut {
            let timedOut = try decodeRecorded(record, as: TimedOutWait.self)
            if kind == .broadcast, let after = timedOut.afterSequence { advanceChannelCursor(channel, to: after) }
            throw WaitTimeoutError(instanceID: instanceID, awaited: channel, deadline: Date(storedMilliseconds: timedOut.deadlineMilliseconds))
        }
        let delivered = try decodeRecorded(record, as: DeliveredMessage.self)
        if kind == .broadcast, let sequence = delivered.seq { advanceChannelCursor(channel, to: sequence) }
        return delivered
    }

    private struct PublishRecord: Codable {
        var channel: String
        var messageID: String
        var target: String?
        /// Why it was not sent: the target did not exist, or had finished (recorded, so that a replay
        /// throws the same error).
        var refused: ErrorRecord?

        enum CodingKeys: String, CodingKey {
            case channel
            case messageID = "message_id"
            case target
            case refused
        }
    }

    private func publishMessage<Message: Encodable>(
        name: String, channel: Channel<some Any>, target: String?, message: Message, explicitID: String?
    ) async throws {
        let reservation = try reserveStep(name: name, explicitID: explicitID)
        if let recorded = try recordedStep(reservation, kind: .messagePublished) {
            if let refused = try decodeRecorded(recorded, as: PublishRecord.self).refused {
                throw EngineError(refused.type == "EngineError.alreadyFinished" ? .alreadyFinished : .instanceNotFound, refused.message)
            }
            return
        }
        try EddaClient.checkNotReserved(channel.name)
        let requested: ChannelMode = target == nil ? (channel.mode == .direct ? .broadcast : channel.mode) : .direct
        guard requested == channel.mode else {
            let misuse = ChannelModeError(channel: channel.name, registered: channel.mode, requested: requested)
            fail(with: misuse)
            throw misuse
        }
        let event: CloudEvent
        do {
            event = try CloudEvent(
                id: "\(instanceID)/\(reservation.stepID)", type: channel.name, source: "edda:\(workflowName)", time: environment.clock.now(),
                json: message
            )
        } catch {
            let failure = EngineError(
                .encodingFailed, "The message for channel '\(channel.name)' could not be encoded as JSON.", instanceID: instanceID,
                stepID: reservation.stepID, cause: error
            )
            fail(with: failure)
            throw failure
        }
        let outgoing = OutgoingMessage(
            channel: channel.name, kind: MessageKind(channel.mode), target: target, envelope: MessageEnvelope(event, sender: instanceID),
            retention: channel.retention
        )
        let record = HistoryEvent(
            instanceID: instanceID, stepID: reservation.stepID, position: reservation.position, name: name, kind: .messagePublished,
            payload: try JSONPayload.encode(PublishRecord(channel: channel.name, messageID: event.id, target: target))
        )
        let outcome = try await mailbox { store in try await store.publish(outgoing, recordedAs: (record, lease), now: environment.clock.now()) }
        if let target, let error = EddaClient.targetError(outcome, target: target, what: "message on channel '\(channel.name)'") {
            // Recorded, so that a replay takes the same path even if the target appears later.
            let refusal = PublishRecord(
                channel: channel.name, messageID: event.id, target: target,
                refused: ErrorRecord(type: "EngineError.\(error.code)", message: error.message)
            )
            try await appendRecord(reservation, kind: .messagePublished, payload: try JSONPayload.encode(refusal))
            throw error
        }
    }

    /// Calls the store: a channel used in the wrong mode fails the run (retrying cannot help); any
    /// other error stops it without an outcome, to be run again.
    private func mailbox<Result>(_ call: (any Store) async throws -> Result) async throws -> Result {
        try checkMayRecord()
        do {
            return try await call(environment.store)
        } catch let misuse as ChannelModeError {
            fail(with: misuse)
            throw misuse
        } catch {
            writeFailed(error)
            throw error
        }
    }

    func decodeData<Payload: Decodable>(of envelope: MessageEnvelope, as: Payload.Type, from source: String) throws -> Payload {
        do {
            guard let text = envelope.data else {
                throw DecodingError.valueNotFound(Payload.self, .init(codingPath: [], debugDescription: "The message has no text data"))
            }
            return try JSONCoding.decoder.decode(Payload.self, from: Data(text.utf8))
        } catch {
            throw EngineError(
                .undecodableMessage,
                "Message \(envelope.id) from '\(source)' has data that cannot be decoded as \(Payload.self); it was consumed and recorded.",
                instanceID: instanceID, cause: error
            )
        }
    }
}
