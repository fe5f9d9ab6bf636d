import FamilyServer
import Glibc
import Logging
import Synchronization

/// One configured listener while it serves: its server and the thread running the serve loop.
final class Listener: Sendable {
    /// `SERVICE@ADDRESS` and its settings, as configured.
    let configuration: ListenerConfiguration
    /// The server (a ``ServiceStreamServer`` or ``ServiceDatagramServer``).
    let server: BaseServer
    /// Whether the socket was inherited (systemd, `fd:N`); such a socket's file is never removed.
    let inherited: Bool
    private let loopEnded = Atomic<Bool>(true)

    /// Whether the daemon's control loop serves this listener instead of a thread of its own:
    /// under the forking model, so that the process is single-threaded whenever it forks (a fork
    /// copies only the forking thread, and a lock another thread held would stay locked forever
    /// in the child).
    let servedByControlLoop: Bool

    init(configuration: ListenerConfiguration, server: BaseServer, inherited: Bool, servedByControlLoop: Bool) {
        self.configuration = configuration
        self.server = server
        self.inherited = inherited
        self.servedByControlLoop = servedByControlLoop
    }

    /// The `listening on SERVICE@ADDRESS` text: the socket's real address in canonical form.
    var listeningText: String { "\(configuration.service.rawValue)@\(server.serverAddress)" }

    /// Starts the serve loop on a thread of its own, unless the daemon's control loop serves
    /// this listener (``servedByControlLoop``).
    func start(pollInterval: Double) throws {
        if servedByControlLoop { return }
        loopEnded.store(false, ordering: .releasing)
        try startDetachedThread { [self] in
            server.serveForever(pollInterval: pollInterval)
            loopEnded.store(true, ordering: .releasing)
        }
    }

    /// Stops taking requests and closes the socket (removing a socket file serverd created);
    /// requests in flight go on.
    func stopListening() {
        server.shutdown(wait: false)
        // A serve loop inside poll(2) holds a reference to the socket, which stays bound until
        // poll returns: closing it under the loop's feet left the address in use for a moment, so
        // that a reload binding it again (a listener whose options changed) failed with
        // EADDRINUSE. The loop wakes at once; wait for it to end. A serial loop busy with a
        // connection is in its handler, not in poll, and is not waited for.
        let deadline = monotonicSeconds() + 2
        while !loopEnded.load(ordering: .acquiring) && !isBusyServingSerially && monotonicSeconds() < deadline {
            usleep(1_000)
        }
        server.serverClose()
    }

    /// A serial stream server whose loop is running a handler.
    private var isBusyServingSerially: Bool {
        guard server.processingModel is SerialModel, let listener = server as? any ServesListener else { return false }
        return listener.context.inFlight.isServing
    }

    /// Requests still being served (including, for a serial server, one its loop is busy with).
    var isIdle: Bool {
        server.processingModel.collect(server: server)
        return loopEnded.load(ordering: .acquiring) && server.processingModel.activeRequests == 0
    }

    /// Connections in flight now.
    var activeRequests: Int { server.processingModel.activeRequests }

    /// Ends what is still in flight: shuts connections down and ends forked workers. Exec
    /// children are ended with their process groups (``ExecProcessGroups/end(logger:)``).
    func cutShort() {
        (server as? any ServesListener)?.context.inFlight.cutShort()
        if let forking = server.processingModel as? ForkingModel {
            for pid in forking.activeChildren { ForkedWorker.terminate(pid) }
        }
    }

    /// Monotonic µs of the serve loop's last pass; `nil` where a busy loop is normal (a serial
    /// stream server serving a long connection) or the loop has ended.
    var heartbeat: UInt64? {
        guard !loopEnded.load(ordering: .acquiring) else { return nil }
        if let stream = server as? ServiceStreamServer, !(stream.processingModel is SerialModel) {
            return stream.heartbeat.load(ordering: .relaxed)
        }
        if let datagram = server as? ServiceDatagramServer {
            return datagram.heartbeat.load(ordering: .relaxed)
        }
        return nil
    }
}
