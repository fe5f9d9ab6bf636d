/// What a server hands to its request handler: an accepted connection or one received datagram.
public enum Request: Sendable {
    /// A connected stream socket, owned by the request (closed by ``BaseServer/closeRequest(_:)``).
    case connection(Socket)
    /// One datagram and the server socket to answer on.
    case datagram(Datagram)

    /// The connected socket of a stream request, else `nil`.
    public var connection: Socket? {
        if case .connection(let socket) = self { return socket }
        return nil
    }

    /// The datagram of a datagram request, else `nil`.
    public var datagram: Datagram? {
        if case .datagram(let datagram) = self { return datagram }
        return nil
    }
}

/// One received datagram.
public struct Datagram: Sendable {
    /// The bytes received.
    public var payload: [UInt8]
    /// The server socket it arrived on, which replies are sent from.
    public var socket: Socket
    /// The sender's credentials (SCM_CREDENTIALS), which a ``DatagramServer`` on a Unix socket
    /// always asks the kernel for; `nil` on inet sockets.
    public var credentials: PeerCredentials?
    /// Where replies wait to be sent together with the others of the datagram's batch: set by a
    /// ``DatagramServer`` whose processing model runs the handler on the serving thread; `nil`
    /// sends each reply at once.
    var replyBatch: DatagramReplyBatch?

    /// Creates a datagram request.
    public init(payload: [UInt8], socket: Socket, credentials: PeerCredentials? = nil) {
        self.payload = payload
        self.socket = socket
        self.credentials = credentials
    }
}
