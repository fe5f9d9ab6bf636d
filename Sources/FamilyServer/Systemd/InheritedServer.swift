import Logging

/// A server made from an inherited socket by ``InheritedSocket/makeServer(handler:model:logger:)``,
/// tagged by what it serves.
public enum InheritedServer: Sendable {
    /// A listening stream socket: serve it with `serveForever` like any server.
    case stream(StreamServer)
    /// A datagram socket: serve it with `serveForever` like any server.
    case datagram(DatagramServer)
    /// An `Accept=yes` connection: `serveForever` serves that one client and returns; the
    /// daemon should then close the server and exit.
    case connection(ConnectionServer)

    /// The server, whichever kind it is.
    public var server: BaseServer {
        switch self {
        case .stream(let server): return server
        case .datagram(let server): return server
        case .connection(let server): return server
        }
    }
}

extension InheritedSocket {
    /// Builds the server that fits this socket's ``kind``, adopting ``socket`` (no bind, no
    /// listen; an inherited Unix socket file is never removed): a ``StreamServer`` for a
    /// listener, a ``DatagramServer`` for a datagram socket, a ``ConnectionServer`` for a
    /// connection. Every request goes to a fresh `handler`.
    ///
    /// For server subclasses of your own, switch on ``kind`` and pass ``socket`` to their
    /// `init(adopting:…)` instead (for a connection, then call
    /// ``BaseServer/serve(connection:clientAddress:)`` with `server.socket`).
    /// - Parameters:
    ///   - handler: the request handler class (a stream handler for listeners and connections,
    ///     a datagram handler for datagram sockets).
    ///   - model: the processing model; a connection is served on the calling thread regardless.
    ///   - logger: where the server logs.
    /// - Throws: what the server's adopting initialiser throws (``SocketError``).
    public func makeServer(
        handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer")
    ) throws -> InheritedServer {
        switch kind {
        case .listener:
            return .stream(try StreamServer(adopting: socket, handler: handler, model: model, logger: logger))
        case .datagram:
            return .datagram(try DatagramServer(adopting: socket, handler: handler, model: model, logger: logger))
        case .connection:
            return .connection(try ConnectionServer(connection: socket, handler: handler, model: model, logger: logger))
        }
    }
}
