import FamilyServer
import Logging
import ServiceLifecycle
import Synchronization

/// A stream server whose connections are handed to you as an `AsyncSequence`, for code that
/// prefers structured concurrency to request handlers.
///
/// It is a `StreamServer` (any family, socket activation, `BaseServer.verifyRequest(_:clientAddress:)`
/// for access control) and a `Service`: a `ServiceGroup` runs its accept loop, and every accepted
/// connection comes out of ``connections``:
///
///     let server = try AsyncStreamServer(address: SocketAddress(parsing: "tcp://127.0.0.1:7007"))
///     let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm], logger: logger)
///     try await withThrowingDiscardingTaskGroup { tasks in
///         tasks.addTask { try await group.run() }
///         for try await connection in server.connections {
///             tasks.addTask { await serve(connection) }
///         }
///     }
///
/// Backpressure: at most ``bufferSize`` accepted connections wait to be taken from ``connections``;
/// while that many wait, the accept loop takes no more and new clients wait in the kernel's backlog
/// (`BaseServer.requestQueueSize`), so a flood of connections cannot grow memory without bound.
///
/// Graceful shutdown (SIGTERM under a `ServiceGroup`) closes the server socket, so that new
/// connections are refused, and then ends ``connections`` once the connections accepted before are
/// taken. The connections themselves are yours: they are served to their end by the tasks serving
/// them (a task group waits for its tasks: that is the drain).
///
/// ``connections`` has one consumer: iterate it from one task. A consumer that stops taking
/// connections stops the accept loop once the buffer is full; once its task is cancelled, the
/// sequence is over and later connections are closed as soon as they are accepted.
open class AsyncStreamServer: StreamServer, Service, @unchecked Sendable {
    // @unchecked: as for BaseServer; the state shared with the consumer is an Atomic and an
    // AsyncThrowingStream, both thread-safe.

    /// The most accepted connections that wait to be taken from ``connections``.
    public let bufferSize: Int

    private let accepted: AsyncThrowingStream<AsyncConnection, any Error>
    private let acceptedInput: AsyncThrowingStream<AsyncConnection, any Error>.Continuation
    private let waiting = Atomic<Int>(0)

    /// Creates, binds and listens on a stream `address` (port 0 takes a free port; read it back
    /// from `BaseServer.serverAddress`).
    /// - Parameters:
    ///   - address: a stream address of any family.
    ///   - bufferSize: the most accepted connections waiting to be taken (at least 1).
    ///   - logger: where the server logs.
    ///   - bindAndActivate: `false` leaves the socket unbound: set options, then call
    ///     `bindAndActivate()`.
    /// - Throws: `SocketError` when the socket cannot be created, bound or listened on.
    public init(
        address: SocketAddress, bufferSize: Int = 16, logger: Logger = Logger(label: "FamilyServer"),
        bindAndActivate: Bool = true
    ) throws {
        precondition(bufferSize > 0, "AsyncStreamServer needs a bufferSize of at least 1")
        self.bufferSize = bufferSize
        (accepted, acceptedInput) = AsyncThrowingStream.makeStream()
        try super.init(
            address: address, handler: BaseRequestHandler.self, model: SerialModel(), logger: logger,
            bindAndActivate: bindAndActivate)
    }

    /// Adopts a listening stream socket (socket activation, `fd:N`); bind and listen are skipped.
    /// - Parameters:
    ///   - socket: a bound, listening stream socket.
    ///   - bufferSize: the most accepted connections waiting to be taken (at least 1).
    ///   - logger: where the server logs.
    /// - Throws: `SocketError` when the socket's address cannot be read.
    public init(adopting socket: Socket, bufferSize: Int = 16, logger: Logger = Logger(label: "FamilyServer")) throws {
        precondition(bufferSize > 0, "AsyncStreamServer needs a bufferSize of at least 1")
        self.bufferSize = bufferSize
        (accepted, acceptedInput) = AsyncThrowingStream.makeStream()
        try super.init(adopting: socket, handler: BaseRequestHandler.self, model: SerialModel(), logger: logger)
    }

    /// The accepted connections, in the order they were accepted. The sequence ends once the server
    /// has stopped and every connection accepted before is taken; it throws what made ``run()`` fail.
    public var connections: Connections { Connections(server: self) }

    /// Accepts connections until graceful shutdown or cancellation, then closes the server socket
    /// and ends ``connections``.
    /// - Throws: `SocketError` when no thread could be started for the accept loop, or with EBADF
    ///   when the server already ran (a server runs once).
    public func run() async throws {
        do {
            try await ServerService(self).run()
            acceptedInput.finish()
        } catch {
            acceptedInput.finish(throwing: error)
            throw error
        }
    }

    /// Hands the connection to ``connections`` instead of a request handler.
    open override func processRequest(_ request: Request, clientAddress: SocketAddress) throws {
        guard let socket = request.connection else {
            preconditionFailure("AsyncStreamServer serves connections, not datagrams")
        }
        waiting.add(1, ordering: .relaxed)
        if case .terminated = acceptedInput.yield(AsyncConnection(socket: socket, clientAddress: clientAddress)) {
            // Nobody will take it: the consumer stopped iterating.
            waiting.subtract(1, ordering: .relaxed)
            shutdownRequest(request)
        }
    }

    /// At capacity while ``bufferSize`` connections wait to be taken.
    open override var isAtCapacity: Bool {
        waiting.load(ordering: .relaxed) >= bufferSize || super.isAtCapacity
    }

    /// A connection was taken from the buffer: make room, and wake the accept loop if it had stopped.
    fileprivate func connectionTaken() {
        let before = waiting.subtract(1, ordering: .relaxed).oldValue
        if before >= bufferSize { wake() }
    }

    /// The accepted connections of an ``AsyncStreamServer``.
    public struct Connections: AsyncSequence, Sendable {
        /// Each element is one accepted connection.
        public typealias Element = AsyncConnection
        fileprivate let server: AsyncStreamServer

        /// Starts taking connections; only one iterator may take them at a time.
        public func makeAsyncIterator() -> Iterator {
            Iterator(server: server, base: server.accepted.makeAsyncIterator())
        }

        /// Takes the connections one by one.
        public struct Iterator: AsyncIteratorProtocol {
            fileprivate let server: AsyncStreamServer
            fileprivate var base: AsyncThrowingStream<AsyncConnection, any Error>.AsyncIterator

            /// The next accepted connection, waiting for one; `nil` once the server has stopped and
            /// none is left.
            /// - Throws: what made ``AsyncStreamServer/run()`` fail.
            public mutating func next() async throws -> AsyncConnection? {
                guard let connection = try await base.next() else { return nil }
                server.connectionTaken()
                return connection
            }
        }
    }
}
