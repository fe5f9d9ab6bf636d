import Glibc

/// Serves each connection on a reactor of an ``EventReactors`` pool: non-blocking reads and writes on epoll, many
/// connections per thread, each with a ``StreamEventHandler`` that the model's factory creates for it.
///
/// The server's serve loop accepts, verifies and counts connections as under any model, but runs on a reactor
/// (``runServeLoop(of:pollInterval:)``); ``process(_:clientAddress:server:)`` keeps each connection on that reactor
/// while it has time to spare (see ``EventReactors`` for when it goes to another), and the reactor serves it until
/// it ends and then calls ``BaseServer/closeRequest(_:)`` and ``BaseServer/endRequest(_:clientAddress:)`` on its
/// thread (the server's metrics get the connection's bytes). An idle connection costs its socket and a few hundred
/// bytes, not a thread. The server's ``BaseServer/handlerType`` is not used: the factory makes the handlers.
///
/// Stream requests only; a datagram handed to it is refused (serve datagrams with another model).
public final class EventModel: ProcessingModel {
    /// The reactors that serve the connections.
    public let reactors: EventReactors
    /// Whether ``close(server:)`` waits until every connection has ended.
    public let blockOnClose: Bool
    /// Creates the handler of each connection, on the connection's reactor thread.
    let makeHandler: @Sendable (EventConnection) -> any StreamEventHandler

    private struct State: Sendable {
        var active = 0
        var capacity: Int?
        var closing = false
    }

    private let state: ConditionLock<State>

    /// Creates an event model.
    /// - Parameters:
    ///   - reactors: the pool that serves the connections; several models (servers) may share one.
    ///   - capacity: the most connections at once; `nil` for no limit.
    ///   - blockOnClose: whether ``close(server:)`` waits for the connections in flight.
    ///   - handler: makes the handler of a connection; called on its reactor thread when the connection is taken.
    public init(
        reactors: EventReactors, capacity: Int? = nil, blockOnClose: Bool = true,
        handler: @escaping @Sendable (EventConnection) -> any StreamEventHandler
    ) {
        self.reactors = reactors
        self.blockOnClose = blockOnClose
        self.makeHandler = handler
        self.state = ConditionLock(State(capacity: capacity))
    }

    /// Hands the connection to a reactor.
    /// - Throws: ``SocketError`` with EOPNOTSUPP for a datagram, ESHUTDOWN once the reactors are stopped.
    public func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) throws {
        guard request.connection != nil else {
            throw SocketError("EventModel.process", errno: EOPNOTSUPP, subject: "a datagram from \(clientAddress)")
        }
        guard !reactors.isStopped else {
            throw SocketError("EventModel.process", errno: ESHUTDOWN, subject: "the connection from \(clientAddress)")
        }
        state.withLock { $0.active += 1 }
        reactors.adopt(request, clientAddress: clientAddress, server: server, model: self)
    }

    public var activeRequests: Int { state.withLock { $0.active } }

    public var capacity: Int? {
        get { state.withLock { $0.capacity } }
        set { state.withLock { $0.capacity = newValue } }
    }

    public var forksWorkers: Bool { false }
    public var runsRequestsOnServingThread: Bool { false }

    /// Runs the server's serve loop on one of the reactors (they take the servers in turn), so that a connection
    /// accepted there is served by that reactor while it has time to spare: no hand-over to another thread for most
    /// connections. Blocks until the loop stopped; `false` once the reactors are stopped.
    public func runServeLoop(of server: BaseServer, pollInterval: Double) -> Bool {
        reactors.runServeLoop(of: server, pollInterval: pollInterval)
    }

    /// Hands the server's serve loop to one of the reactors, as ``runServeLoop(of:pollInterval:)`` does, without a
    /// thread that waits for it; `ended` runs on the reactor once the loop stopped. `false` once the reactors are
    /// stopped.
    public func startServeLoop(
        of server: BaseServer, pollInterval: Double, ended: @escaping @Sendable () -> Void
    ) -> Bool {
        reactors.startServeLoop(of: server, pollInterval: pollInterval, onEnd: ended) != nil
    }

    public func collect(server: BaseServer) {}

    /// With ``blockOnClose``, waits until every connection has ended.
    public func close(server: BaseServer) {
        state.withLock { $0.closing = true }
        guard blockOnClose else { return }
        state.wait(until: { $0.active == 0 }) { _, _ in }
    }

    /// Closes the server's connections on every reactor now.
    public func cutShort(server: BaseServer) {
        reactors.cutShort(server: server)
    }

    /// A connection ended (its reactor's thread): wakes the serve loop if that freed capacity, and ``close(server:)``
    /// if it was the last.
    func requestEnded(server: BaseServer) {
        let (wakeServer, lastOneOut) = state.withLock { state -> (Bool, Bool) in
            state.active -= 1
            return (state.capacity.map { state.active == $0 - 1 } ?? false, state.closing && state.active == 0)
        }
        if lastOneOut { state.withLock(notify: .all) { _ in } }
        if wakeServer { server.wake() }
    }
}
