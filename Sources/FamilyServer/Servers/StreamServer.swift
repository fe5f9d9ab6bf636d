import Logging

/// A connection-oriented server for any family: TCP over IPv4 or IPv6, or a Unix stream socket.
/// Each request is one accepted connection.
open class StreamServer: BaseServer, @unchecked Sendable {
    /// Creates, binds and (unless `bindAndActivate` is false) listens on a stream `address`.
    public override init(
        address: SocketAddress, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer"), bindAndActivate: Bool = true
    ) throws {
        precondition(address.transport == .stream, "StreamServer needs a stream address, not \(address)")
        try super.init(address: address, handler: handler, model: model, logger: logger, bindAndActivate: bindAndActivate)
    }

    /// Adopts a listening stream socket (socket activation, `fd:N`); bind and listen are skipped.
    public override init(
        adopting socket: Socket, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer")
    ) throws {
        precondition(socket.transport == .stream, "StreamServer needs a stream socket")
        try super.init(adopting: socket, handler: handler, model: model, logger: logger)
    }

    /// Listens with a backlog of ``BaseServer/requestQueueSize``. May be overridden.
    open override func serverActivate() throws {
        try socket.listen(backlog: requestQueueSize)
    }

    /// Accepts one connection (close-on-exec, blocking), or returns `nil` if none is pending.
    open override func getRequest() throws -> (Request, SocketAddress)? {
        guard let (connection, peer) = try socket.accept() else { return nil }
        return (.connection(connection), peer)
    }
}

/// A stream server for TCP over IPv4 or IPv6 (Python's `TCPServer`).
open class TCPServer: StreamServer, @unchecked Sendable {}

/// A stream server on a Unix socket, at a path or in the abstract namespace (Python's `UnixStreamServer`).
open class UnixStreamServer: StreamServer, @unchecked Sendable {}
