/// How a server runs its requests: one after another on the serving thread, on threads, in child
/// processes, or any other way (an event-driven model fits the same four methods).
///
/// The model decides where ``BaseServer/runRequest(_:clientAddress:)`` runs, counts the requests in
/// flight so the serve loop can stop taking new ones at ``capacity``, and reaps its workers.
public protocol ProcessingModel: AnyObject, Sendable {
    /// Starts serving `request`: calls `server.runRequest(request, clientAddress:)` somewhere.
    /// - Throws: when no worker could be started (the server then closes the request unserved).
    func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) throws

    /// Requests taken but not yet finished.
    var activeRequests: Int { get }

    /// The most requests in flight at once; at that count the serve loop stops taking new ones
    /// until one finishes. `nil`: no limit.
    var capacity: Int? { get }

    /// Reaps finished workers without waiting; called on every pass of the serve loop.
    func collect(server: BaseServer)

    /// Called by ``BaseServer/serverClose()``: waits for (or just reaps) the workers, as configured.
    func close(server: BaseServer)
}
