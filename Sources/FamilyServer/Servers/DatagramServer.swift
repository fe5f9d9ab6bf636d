import Glibc
import Logging

/// A datagram server for any family: UDP over IPv4 or IPv6, or a Unix datagram socket. Each
/// request is one datagram; replies go back from the same socket.
open class DatagramServer: BaseServer, @unchecked Sendable {
    /// The largest datagram received whole; a longer one is truncated to this size.
    public var maxPacketSize = 65536
    /// Replies dropped because they could have reached another socket than the sender's
    /// (``ReplyRefusal``), counted and logged at most every 10 s.
    public let droppedReplies = ThrottledWarning()

    /// Creates and (unless `bindAndActivate` is false) binds a datagram `address`.
    public override init(
        address: SocketAddress, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer"), bindAndActivate: Bool = true
    ) throws {
        precondition(address.transport == .datagram, "DatagramServer needs a datagram address, not \(address)")
        try super.init(address: address, handler: handler, model: model, logger: logger, bindAndActivate: false)
        try askForCredentials()
        if bindAndActivate { try self.bindAndActivate() }
    }

    /// Adopts a bound datagram socket (socket activation, `fd:N`); binding is skipped.
    public override init(
        adopting socket: Socket, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer")
    ) throws {
        precondition(socket.transport == .datagram, "DatagramServer needs a datagram socket")
        try super.init(adopting: socket, handler: handler, model: model, logger: logger)
        try askForCredentials()
    }

    /// Every Unix datagram carries its sender's credentials (SO_PASSCRED), which
    /// ``Datagram/credentials`` holds and a reply is checked against (``UnixReplyTarget``).
    private func askForCredentials() throws {
        guard socket.family == AF_UNIX else { return }
        do {
            try socket.enablePassCredentials()
        } catch {
            serverClose()
            throw error
        }
    }

    /// Receives one datagram, or returns `nil` if none is pending.
    open override func getRequest() throws -> (Request, SocketAddress)? {
        if socket.family == AF_UNIX {
            guard let (bytes, sender, credentials) = try socket.receiveDatagramWithCredentials(maxSize: maxPacketSize)
            else { return nil }
            return (.datagram(Datagram(payload: bytes, socket: socket, credentials: credentials)), sender)
        }
        guard let (bytes, sender) = try socket.receiveDatagram(maxSize: maxPacketSize) else { return nil }
        return (.datagram(Datagram(payload: bytes, socket: socket)), sender)
    }

    /// Reaps the processing model's workers and, on a Unix socket, lets go of what the reply
    /// checks kept for senders that went quiet (``UnixReplyTarget/releaseIdle(after:)``).
    open override func serviceActions() {
        super.serviceActions()
        if socket.family == AF_UNIX { UnixReplyTarget.releaseIdle() }
    }

    /// Counts and logs (throttled) a dropped reply; anything else goes to `super`.
    open override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        guard let refusal = error as? ReplyRefusal else {
            super.handleError(request, clientAddress: clientAddress, error: error)
            return
        }
        let sender = clientAddress.map { " to \($0)" } ?? ""
        droppedReplies.record(logger, "\(serverAddress): reply\(sender) dropped: \(refusal.reason)")
    }
}

/// A datagram server for UDP over IPv4 or IPv6 (Python's `UDPServer`).
open class UDPServer: DatagramServer, @unchecked Sendable {}

/// A datagram server on a Unix socket (Python's `UnixDatagramServer`).
open class UnixDatagramServer: DatagramServer, @unchecked Sendable {}
