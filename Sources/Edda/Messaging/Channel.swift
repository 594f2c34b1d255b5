public import Foundation

/// A named, typed channel between workflows (and from outside them), persisted in the store.
///
/// Declare a channel once, next to your workflows, and use it from both sides:
///
/// ```swift
/// let jobs = Channel<Job>("jobs", mode: .competing)
///
/// let producer = Workflow("producer") { (ctx, batch: [Job]) in
///     for job in batch { try await ctx.publish(jobs, job) }
/// }
/// let consumer = Workflow("consumer") { (ctx, _: Int) -> Int in
///     var done = 0
///     while true {
///         guard let job = try? await ctx.receive(jobs, timeout: .seconds(300)) else { return done }
///         try await process(ctx, job.data)
///         done += 1
///     }
/// }
/// ```
///
/// A channel has one ``ChannelMode``; using it in another mode is a ``ChannelModeError``. Messages
/// are kept for ``retention`` when nobody takes them at once.
public struct Channel<Message: Codable & Sendable>: Sendable, Hashable {
    /// The channel's name, unique in the store.
    public let name: String
    public let mode: ChannelMode
    /// How long the store keeps a message nobody has taken yet (and a broadcast message, for
    /// subscribers that are busy when it is published). Seven days by default.
    public let retention: Duration

    public init(_ name: String, mode: ChannelMode, retention: Duration = .seconds(7 * 86_400)) {
        self.name = name
        self.mode = mode
        self.retention = retention
    }
}

/// How a channel's messages reach its subscribers.
public enum ChannelMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every subscriber receives every message published after it subscribed
    /// (``WorkflowContext/subscribe(_:)``, or its first ``WorkflowContext/receive(_:timeout:receiveID:)``).
    case broadcast
    /// Each message is consumed by exactly one subscriber: a work queue between workflows.
    case competing
    /// Each message is for one instance, named by the sender
    /// (``WorkflowContext/send(_:to:_:sendID:)``, ``EddaApp/send(_:to:_:)``).
    case direct
}

/// A message a workflow received from a channel.
public struct ChannelMessage<Message: Sendable>: Sendable {
    /// The message's ID (unique; a CloudEvent ID).
    public var id: String
    /// The channel it came from.
    public var channel: String
    public var data: Message
    /// When it was published.
    public var publishedAt: Date
    /// The instance that published it, when a workflow did.
    public var sender: String?
    /// Its number on the channel (grows with each message kept by the store).
    public var sequence: Int64?
}

/// A channel was used in a mode other than the one it was first used with. Nothing was written.
///
/// A channel's mode is fixed by its first use in the store; use another channel name for the other mode.
public struct ChannelModeError: EddaError {
    public var channel: String
    /// The mode the channel has in the store.
    public var registered: ChannelMode
    /// The mode it was used with.
    public var requested: ChannelMode
    public var cause: (any Error)? { nil }

    public init(channel: String, registered: ChannelMode, requested: ChannelMode) {
        self.channel = channel
        self.registered = registered
        self.requested = requested
    }

    public var message: String {
        "Channel '\(channel)' is a \(registered.rawValue) channel; it cannot be used as \(requested.rawValue). "
            + "A channel keeps the mode of its first use: declare one Channel per name, or use another name for the other mode."
    }
}

/// A wait for an event or a channel message ran out of time. Recorded in history, so a replay
/// throws it again at the same point; catch it to take another path.
///
/// ```swift
/// do {
///     let paid = try await ctx.waitForEvent(type: "payment.completed", as: Payment.self, timeout: .seconds(3600))
///     …
/// } catch is WaitTimeoutError {
///     try await cancelOrder(ctx, order)
/// }
/// ```
public struct WaitTimeoutError: EddaError {
    public var instanceID: String
    /// The event type or channel name waited for.
    public var awaited: String
    /// The deadline that passed.
    public var deadline: Date
    public var cause: (any Error)? { nil }

    public init(instanceID: String, awaited: String, deadline: Date) {
        self.instanceID = instanceID
        self.awaited = awaited
        self.deadline = deadline
    }

    public var message: String {
        "Instance \(instanceID) waited for '\(awaited)' until \(deadline) and nothing came."
    }
}
