/// How a server runs its requests: one after another on the serving thread, on threads, in child
/// processes, or any other way (an event-driven model fits the same four methods).
///
/// The model decides where ``BaseServer/runRequest(_:clientAddress:)`` runs, counts the requests in
/// flight so the serve loop can stop taking new ones at ``capacity``, and reaps its workers. It also
/// tells whoever runs the serve loop what that loop may share with others (``forksWorkers``,
/// ``runsRequestsOnServingThread``) and how to end its work early (``cutShort(server:)``): a
/// program serving several servers asks the model, never which model it holds.
public protocol ProcessingModel: AnyObject, Sendable {
    /// Starts serving `request`: calls `server.runRequest(request, clientAddress:)` somewhere.
    /// - Throws: when no worker could be started (the server then closes the request unserved).
    func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) throws

    /// Requests taken but not yet finished.
    var activeRequests: Int { get }

    /// The most requests in flight at once; at that count the serve loop stops taking new ones
    /// until one finishes. `nil`: no limit. May be changed while serving (a new limit applies to
    /// the next request taken); a model that runs one request at a time ignores it.
    var capacity: Int? { get set }

    /// Whether workers are started with fork(2). A process that forks must hold no lock another
    /// thread might hold (the child would inherit it locked forever): its serve loops then run on
    /// one thread, the one that forks, and no other thread of the process serves at that time.
    var forksWorkers: Bool { get }

    /// Whether each request runs on the serving thread itself, so that the loop makes no pass
    /// (no ``BaseServer/serviceActions()``, no heartbeat) while a request runs, and a shutdown
    /// takes effect only once that request is over.
    var runsRequestsOnServingThread: Bool { get }

    /// Runs `server`'s serve loop in a way of the model's own, on threads of its own, until a shutdown is requested,
    /// blocking the caller meanwhile, and returns `true` once the loop has stopped; or returns `false` at once, leaving
    /// the loop to ``BaseServer/serveForever(pollInterval:)`` (the default). Called by `serveForever` on its thread.
    func runServeLoop(of server: BaseServer, pollInterval: Double) -> Bool

    /// Starts `server`'s serve loop in the model's own way, on threads of its own, and returns `true` at once; `ended`
    /// runs, on one of those threads, once a shutdown let the loop go. Or returns `false` and starts nothing (the
    /// default): ``BaseServer/serveForever(pollInterval:)`` must then run on a thread of the caller's. Called by
    /// ``BaseServer/startServing(pollInterval:ended:)``.
    func startServeLoop(of server: BaseServer, pollInterval: Double, ended: @escaping @Sendable () -> Void) -> Bool

    /// Reaps finished workers without waiting; called on every pass of the serve loop.
    func collect(server: BaseServer)

    /// Called by ``BaseServer/serverClose()``: waits for (or just reaps) the workers, as configured.
    func close(server: BaseServer)

    /// Ends the requests in flight now rather than letting them finish (a drain that ran out of
    /// time): the forking model terminates its workers; models whose requests run in this process
    /// leave it to the server, which shuts their connections down.
    func cutShort(server: BaseServer)

    /// Replaces the workers that serve request after request and hold the process's state from
    /// when they were started (the forking model's pre-forked workers) after that state changed, a
    /// new configuration say: idle ones leave now, busy ones after their request. Models without
    /// such workers do nothing (the default).
    func retireWorkers(server: BaseServer)
}

extension ProcessingModel {
    /// Does nothing: the model has no workers that outlive a request.
    public func retireWorkers(server: BaseServer) {}
}

extension ProcessingModel {
    /// `false`: ``BaseServer/serveForever(pollInterval:)`` runs the loop.
    public func runServeLoop(of server: BaseServer, pollInterval: Double) -> Bool { false }

    /// `false`: the loop needs a thread of the caller's (``BaseServer/serveForever(pollInterval:)``).
    public func startServeLoop(
        of server: BaseServer, pollInterval: Double, ended: @escaping @Sendable () -> Void
    ) -> Bool { false }
}
