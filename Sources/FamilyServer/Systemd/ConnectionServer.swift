import Glibc
import Logging
import Synchronization

/// Serves exactly one stream connection that is already established: the connected socket
/// systemd passes to each instance of an `Accept=yes` socket unit (or one inherited inetd-style).
///
/// It is a ``StreamServer`` whose ``BaseServer/socket`` is the connection itself, so request
/// handlers see the usual `request`, `clientAddress` and `server`. ``getRequest()`` returns the
/// connection once and `nil` afterwards; ``serveForever(pollInterval:)`` and ``handleRequest()``
/// serve it — verify, handler, shut down — and return once the handler is done:
///
///     let server = try ConnectionServer(connection: inherited.socket, handler: EchoHandler.self)
///     server.serveForever()      // returns when the client is served
///     server.serverClose()
///
/// The handler runs on the calling thread whatever the processing model (one connection has
/// nothing to run concurrently with, and returning only once it is served is what an `Accept=yes`
/// instance needs: it exits afterwards); the model is kept for ``BaseServer/serverClose()`` only.
/// Unlike the serve loop, nothing polls the socket first, so services that speak first (daytime)
/// work. To stop early — a second SIGTERM — call ``disconnect()`` from another thread.
///
/// A daemon with its own ``StreamServer`` subclass (access rules in `verifyRequest`, say) can
/// instead adopt the connection with that subclass and call
/// ``BaseServer/serve(connection:clientAddress:)``.
open class ConnectionServer: StreamServer, @unchecked Sendable {
    /// The peer of the connection (an unnamed Unix address when the client never bound one).
    public let clientAddress: SocketAddress
    private let taken = Atomic<Bool>(false)

    /// Takes ownership of a connected stream socket; it is switched back to blocking mode.
    /// - Throws: ``SocketError`` with EPROTOTYPE for a datagram socket, EINVAL for a listening
    ///   one, or for the calls adopting it.
    public init(
        connection: Socket, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer")
    ) throws {
        guard connection.transport == .stream else {
            throw SocketError("ConnectionServer", errno: EPROTOTYPE, subject: "\(connection) is a datagram socket")
        }
        guard !connection.isListening else {
            throw SocketError("ConnectionServer", errno: EINVAL, subject: "\(connection) is listening, not connected")
        }
        clientAddress = (try? connection.peerAddress()) ?? SocketAddress(.stream, .unnamed)
        try super.init(adopting: connection, handler: handler, model: model, logger: logger)
        try connection.setNonBlocking(false)
    }

    /// Whether the connection was taken (served, or refused by `verifyRequest`).
    public var isServed: Bool { taken.load(ordering: .acquiring) }

    /// Does nothing: the connection needs no `listen`.
    open override func serverActivate() throws {}

    /// Returns the connection the first time, `nil` ever after.
    open override func getRequest() throws -> (Request, SocketAddress)? {
        guard !taken.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        return (.connection(socket), clientAddress)
    }

    /// Serves the connection (see ``serveConnection()``) and returns; `pollInterval` is unused.
    open override func serveForever(pollInterval: Double = 0.5) {
        serveConnection()
    }

    /// Serves the connection (see ``serveConnection()``) and returns; ``BaseServer/timeout`` is unused.
    open override func handleRequest() {
        serveConnection()
    }

    /// Serves the connection on the calling thread, once: `verifyRequest`, then the handler,
    /// then `shutdownRequest` (the peer sees EOF) and `requestEnded`.
    /// - Returns: `true` when the handler ran; `false` when `verifyRequest` refused the connection
    ///   or it was served before.
    @discardableResult
    public func serveConnection() -> Bool {
        guard let (request, client) = try? getRequest() else { return false }
        return serveTaken(request, clientAddress: client)
    }

    /// Shuts the connection down in both directions, so that a handler blocked reading or writing
    /// it returns at once. Safe from any thread; for cutting a drain short.
    public func disconnect() {
        try? socket.shutdown(Int32(SHUT_RDWR))
    }
}

extension BaseServer {
    /// Serves one connected stream socket as one request of this server, on the calling thread:
    /// ``verifyRequest(_:clientAddress:)`` (a refused connection is shut down and closed unserved),
    /// then the handler through ``runRequest(_:clientAddress:)`` — so ``finishRequest(_:clientAddress:)``,
    /// ``handleError(_:clientAddress:error:)``, ``shutdownRequest(_:)`` and ``closeRequest(_:)``
    /// overrides apply — and ``requestEnded(_:clientAddress:)``. Returns once it is over; the
    /// connection is closed by then.
    ///
    /// This is the way to serve an `Accept=yes` connection with a server subclass of your own:
    /// adopt the connection with that subclass's `init(adopting:…)` and pass it `server.socket`.
    /// ``ConnectionServer`` does exactly this for a plain handler.
    /// - Parameters:
    ///   - connection: a connected stream socket, owned from now on by the request; it is
    ///     switched to blocking mode.
    ///   - clientAddress: the peer; `nil` reads it with `getpeername`.
    /// - Returns: `true` when the handler ran, `false` when the connection was refused.
    @discardableResult
    public func serve(connection: Socket, clientAddress: SocketAddress? = nil) -> Bool {
        try? connection.setNonBlocking(false)
        let client = clientAddress ?? (try? connection.peerAddress()) ?? SocketAddress(.stream, .unnamed)
        return serveTaken(.connection(connection), clientAddress: client)
    }

    /// Verifies and runs a request taken outside the serve loop, on the calling thread.
    fileprivate func serveTaken(_ request: Request, clientAddress: SocketAddress) -> Bool {
        guard verifyRequest(request, clientAddress: clientAddress) else {
            metrics.refused.increment()
            shutdownRequest(request)
            return false
        }
        metrics.requests.increment()
        metrics.active.increment()
        // The serial model runs the request here and reports its end, exactly as the loop would.
        SerialModel().process(request, clientAddress: clientAddress, server: self)
        return true
    }
}
