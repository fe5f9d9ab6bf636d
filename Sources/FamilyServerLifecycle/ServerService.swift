import FamilyServer
import Glibc
import ServiceLifecycle

/// Runs any FamilyServer server as a `Service` of swift-service-lifecycle, so that a `ServiceGroup`
/// starts it and stops it gracefully on SIGTERM.
///
///     let server = try StreamServer(address: address, handler: Echo.self, model: ThreadingModel())
///     let group = ServiceGroup(services: [ServerService(server)], gracefulShutdownSignals: [.sigterm],
///                              logger: logger)
///     try await group.run()
///
/// ``run()`` serves with ``FamilyServer/BaseServer/serve(pollInterval:)`` until graceful shutdown
/// is triggered, then drains with ``FamilyServer/BaseServer/shutdownAndDrain()``: the server socket
/// is closed (new connections are refused) and `run()` returns once the requests in flight have
/// ended as the processing model's close waits for them.
///
/// Cancellation (a second signal, a failing sibling service) stops the loop the same way and also
/// asks the processing model to cut its requests short
/// (`ProcessingModel.cutShort(server:)`: the forking model terminates its children).
/// Requests that run in this process cannot be interrupted and still run to their end: give their
/// handlers a timeout.
///
/// A server runs once: the service closes it when it ends.
public struct ServerService: Service {
    /// The server this service runs.
    public let server: BaseServer
    /// How often the serve loop runs the server's service actions while idle.
    public let pollInterval: Double

    /// Wraps `server`, which must be bound and activated (the initialisers do that by default).
    public init(_ server: BaseServer, pollInterval: Double = 0.5) {
        self.server = server
        self.pollInterval = pollInterval
    }

    /// Serves until graceful shutdown or cancellation, then closes the server and drains its
    /// requests in flight before returning.
    /// - Throws: `SocketError` with EBADF when the server is already closed (it ran before), or
    ///   when no thread could be started for the serve loop or the drain (the server is closed
    ///   anyway when the serve loop could not start).
    public func run() async throws {
        let server = self.server
        guard server.fileno >= 0 else {
            throw SocketError("serve", errno: EBADF, subject: "\(server.serverAddress) (the server is closed: a server runs once)")
        }
        do {
            try await withGracefulShutdownHandler {
                try await server.serve(pollInterval: pollInterval)
            } onGracefulShutdown: {
                server.shutdown(wait: false)
            }
        } catch {
            server.serverClose()
            throw error
        }
        if Task.isCancelled {
            server.processingModel.cutShort(server: server)
        }
        try await server.shutdownAndDrain()
    }
}
