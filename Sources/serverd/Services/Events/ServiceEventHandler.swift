import FamilyServer
import Glibc

/// The base of every stream service under the event model, what ``ServiceStreamHandler`` is to the blocking models:
/// the listener's idle timeout and `min-rate`, a request deadline for services that have requests, replies bounded by
/// the same 64 KiB, the same log line for each cut (the reason, the listener and the peer), and the same connection
/// line and counts when it ends (``ConnectionRecord``, ``ListenerCounters``). Its subclasses are state machines: they
/// get bytes as they arrive and answer at once, never waiting.
class ServiceEventHandler: StreamEventHandler {
    /// The listener this connection came to.
    let context: ListenerContext
    /// The listener's policy when this connection started: a reload meanwhile applies to later connections.
    let policy: ListenerPolicy
    /// `SERVICE@ADDRESS` as declared, for messages.
    let label: String
    /// The connection's `min-rate`, from the moment it was taken.
    private var minimumRate: MinimumRate?

    /// The time by which the request being received must be complete (`request-timeout`); `nil` between requests.
    /// Set by the services that have requests.
    var requestDeadline: Double?
    /// How the connection ended: the client's close unless something else ended it.
    var end = ConnectionEnd.clientClose

    required init(context: ListenerContext) {
        let current = context.current
        self.context = context
        self.policy = current.policy
        self.label = current.label
    }

    /// The handler of a connection to the listener's service, as its policy says now.
    static func make(for context: ListenerContext) -> ServiceEventHandler {
        switch context.policy.service {
        case .echo: return EchoEventHandler(context: context)
        case .discard: return DiscardEventHandler(context: context)
        case .daytime: return DaytimeEventHandler(context: context)
        case .stamp: return StampEventHandler(context: context)
        // An exec connection is started by the server before it reaches the model; only a reload between the two
        // makes one arrive here, and it ends at once.
        case .exec: return ServiceEventHandler(context: context)
        }
    }

    /// The service starts: writes a greeting, or closes. Does nothing by default (an exec connection that a reload
    /// sent here is closed).
    func start(on connection: EventConnection) {
        if policy.service == .exec { connection.close() }
    }

    /// The service gets bytes. Does nothing by default.
    func serve(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {}

    /// The client ended its side: the connection closes once the replies are sent.
    func inputEnded(on connection: EventConnection) {
        connection.close()
    }

    // MARK: - StreamEventHandler

    final func opened(_ connection: EventConnection) {
        context.inFlight.begin(connection.socket)
        connection.outputLimit = 64 * 1024
        if policy.idleTimeout > .zero { connection.idleTimeout = policy.idleTimeout.seconds }
        if policy.minRate > 0 {
            let grace = policy.requestTimeout > .zero ? policy.requestTimeout : ServiceStreamHandler.defaultRateGrace
            minimumRate = MinimumRate(
                bytesPerSecond: Double(policy.minRate), start: connection.openedAt, grace: grace.seconds)
        }
        start(on: connection)
        updateDeadline(connection)
    }

    final func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        serve(bytes, on: connection)
        updateDeadline(connection)
    }

    final func deadlineReached(on connection: EventConnection) {
        let now = MonotonicClock.seconds()
        if let requestDeadline, now >= requestDeadline {
            end = .deadline
            context.logger.notice("\(label): closing connection from \(connection.clientAddress): request not complete within request-timeout \(ValueSyntax.display(policy.requestTimeout.seconds)) s")
            connection.close()
        } else if let minimumRate, now >= minimumRate.deadline(afterReceiving: connection.bytesReceived) {
            end = .minRate
            context.logger.notice("\(label): closing connection from \(connection.clientAddress): too slow, below min-rate \(policy.minRate) bytes/s")
            connection.close()
        } else {
            updateDeadline(connection)
        }
    }

    final func connectionClosed(_ connection: EventConnection, reason: EventCloseReason) {
        context.inFlight.end(connection.socket)
        let client = connection.clientAddress
        switch reason {
        case .closed:
            break
        case .cutShort:
            end = .drain
        case .idle:
            end = .idle
            context.logger.info("\(label): closing connection from \(client): idle for idle-timeout \(ValueSyntax.display(policy.idleTimeout.seconds)) s")
        case .failed(let error) where [ECONNRESET, EPIPE, ENOTCONN, ESHUTDOWN].contains(error.errno):
            end = .reset
            context.logger.debug("\(label): \(client) went away: \(error)")
        case .failed(let error):
            end = .error
            connection.server.handleError(nil, clientAddress: client, error: error)
        }
        context.logger.debug("\(label): connection from \(client) closed")
        record(connection)
    }

    /// Counts the connection's bytes and writes its connection line, as the blocking models do.
    private func record(_ connection: EventConnection) {
        let bytes = (received: connection.bytesReceived, sent: connection.bytesSent)
        context.counters.transferred(received: bytes.received, sent: bytes.sent)
        guard context.logsConnections(policy) else { return }
        ConnectionRecord(
            listener: "\(policy.service.rawValue)@\(connection.server.serverAddress)", service: policy.service,
            peer: .of(connection.socket, client: connection.clientAddress),
            end: context.inFlight.wasCutShort ? .drain : end, duration: MonotonicClock.seconds() - connection.openedAt,
            bytes: bytes
        ).log(to: context.logger)
    }

    /// The connection's deadline: the earlier of the request's and the time its rate falls below `min-rate`.
    private func updateDeadline(_ connection: EventConnection) {
        guard !connection.isClosing else { return }
        let rate = minimumRate?.deadline(afterReceiving: connection.bytesReceived)
        // No array: this runs for every chunk a connection receives.
        let next: Double? = switch (requestDeadline, rate) {
        case (let request?, let rate?): min(request, rate)
        case (let request, let rate): request ?? rate
        }
        if connection.deadline != next { connection.deadline = next }
    }
}
