import FamilyServer
import Glibc
import Logging
import Synchronization

/// One socket serverd serves, while it serves: its server, the listener context its handlers read, and the thread
/// running its serve loop. What the loop may share, and how work in flight is ended, the processing model says
/// (``ProcessingModel/forksWorkers``, ``ProcessingModel/runsRequestsOnServingThread``,
/// ``ProcessingModel/cutShort(server:)``); the listener never asks which model it holds.
final class Listener: Sendable {
    /// The declared identity (address and socket origin) this socket serves.
    let identity: ListenerIdentity
    /// The policy new connections get, the label and the log.
    let context: ListenerContext
    /// The server.
    let server: any ServesListener
    /// Whether the socket is a duplicate of an inherited one (systemd, `fd:N`), whose file is never removed.
    let inherited: Bool
    private let loopEnded = Atomic<Bool>(true)

    /// Whether the daemon's control loop serves this listener instead of a thread of its own: when the stream model
    /// forks, the whole process must be single-threaded whenever it forks (a fork copies only the forking thread, and
    /// a lock another thread held would stay locked for ever in the child), datagram listeners included; and an exec
    /// stream listener, whose children the control loop reaps, under a model that hands requests to workers.
    let servedByControlLoop: Bool

    /// The socket file of a socket passed down by a binary upgrade, until the hand-over is done
    /// (``ownTakenOverSocketFile()``): should this start fail before, the old process still serves it, and the file
    /// must stay.
    private let takenOverFile: Mutex<UnixSocketFile?>

    init(
        identity: ListenerIdentity, context: ListenerContext, server: any ServesListener, inherited: Bool,
        servedByControlLoop: Bool, takenOverFile: UnixSocketFile? = nil
    ) {
        self.identity = identity
        self.context = context
        self.server = server
        self.inherited = inherited
        self.servedByControlLoop = servedByControlLoop
        self.takenOverFile = Mutex(takenOverFile)
    }

    /// Makes the socket file passed down with the socket this listener's own, to remove when it closes.
    func ownTakenOverSocketFile() {
        guard let file = takenOverFile.withLock({ file in defer { file = nil }; return file }) else { return }
        server.takeOwnership(of: file)
    }

    /// What a binary upgrade passes down for this listener: its socket, and the locked `PATH.lock` of the socket
    /// file serverd created (or took over) for it.
    var passedDescriptors: (socket: Int32, lock: Int32?) {
        let lock = server.createdSocketFile?.lockDescriptor ?? takenOverFile.withLock { $0?.lockDescriptor }
        return (server.fileno, lock.flatMap { $0 >= 0 ? $0 : nil })
    }

    /// Stops taking requests and closes the socket after a binary upgrade: the socket file and its lock file stay,
    /// the new process serves them.
    func handOver() {
        server.leaveSocketFile()
        takenOverFile.withLock { file in
            file?.relinquish()
            file = nil
        }
        stopListening()
    }

    /// The `listening on SERVICE@ADDRESS` text: the socket's real address in canonical form.
    var listeningText: String { "\(context.policy.service.rawValue)@\(server.serverAddress)" }

    /// Starts the serve loop: on the processing model's own threads when it has some (the event model's reactors),
    /// else on a thread of its own; not at all when the daemon's control loop serves this listener.
    func start(pollInterval: Double) throws {
        if servedByControlLoop { return }
        loopEnded.store(false, ordering: .releasing)
        if server.startServing(pollInterval: pollInterval, ended: { [self] in
            loopEnded.store(true, ordering: .releasing)
        }) {
            return
        }
        do {
            try DetachedThread.start { [self] in
                server.serveForever(pollInterval: pollInterval)
                loopEnded.store(true, ordering: .releasing)
            }
        } catch {
            loopEnded.store(true, ordering: .releasing)
            throw error
        }
    }

    /// Applies a reloaded declaration of the same identity: new connections get its policy, the connection limit
    /// and the reply rate change at once, a changed socket mode is set on the socket file serverd created. Open
    /// connections keep what they started with. Workers that serve connection after connection (the forking model's
    /// pre-forked ones), which hold the configuration they were forked with, are replaced.
    func update(_ declaration: ListenerDeclaration, logger: Logger) {
        let old = context.policy
        context.update(declaration)
        server.apply(declaration.policy)
        server.processingModel.retireWorkers(server: server)
        if declaration.policy.socketMode != old.socketMode, let mode = declaration.policy.socketMode,
            let file = server.createdSocketFile
        {
            do {
                try file.setMode(mode_t(mode))
            } catch {
                logger.warning("\(declaration.text): cannot change the socket mode: \(error)")
            }
        }
    }

    /// Stops taking requests and closes the socket (removing a socket file serverd created); requests in flight go on,
    /// but a wait-mode program, which would serve the socket for ever, gets SIGTERM.
    func stopListening() {
        stopTakingRequests()
        closeOnceLoopEnded()
    }

    /// The first half of ``stopListening()``: asks the serve loop to stop (a wait-mode program gets SIGTERM) and
    /// returns at once, so that several listeners' loops wind down together; ``closeOnceLoopEnded()`` follows.
    func stopTakingRequests() {
        server.waitMode.signal(SIGTERM)
        server.shutdown(wait: false)
    }

    /// The second half of ``stopListening()``: closes the socket once the serve loop asked to stop has ended.
    ///
    /// A serve loop inside poll(2) holds a reference to the socket, which stays bound until poll returns: closing it
    /// under the loop's feet left the address in use for a moment. The loop wakes at once and ends within tens of
    /// microseconds, so the wait looks every 100 µs; a loop that runs its requests itself may be busy with one, and is
    /// not waited for; none is waited for beyond 2 s.
    func closeOnceLoopEnded() {
        let deadline = MonotonicClock.seconds() + 2
        while !loopEnded.load(ordering: .acquiring) && !isBusyWithRequest && MonotonicClock.seconds() < deadline {
            usleep(100)
        }
        server.serverClose()
    }

    /// Whether the serve loop is running a request itself.
    private var isBusyWithRequest: Bool {
        server.processingModel.runsRequestsOnServingThread && context.inFlight.isServing
    }

    /// Whether nothing is in flight any more and the loop has ended.
    var isIdle: Bool {
        server.processingModel.collect(server: server)
        return loopEnded.load(ordering: .acquiring) && server.connectionsInFlight == 0
    }

    /// Connections in flight now, exec children included.
    var activeRequests: Int { server.connectionsInFlight }

    /// Ends what is still in flight: SIGKILL to a wait-mode program, shuts connections down (exec children's too) and
    /// lets the model end its workers.
    /// Exec children are ended with their process groups (``ExecProcessGroups/end(logger:)``).
    func cutShort() {
        server.waitMode.signal(SIGKILL)
        context.inFlight.cutShort()
        server.processingModel.cutShort(server: server)
    }

    /// Monotonic µs of the serve loop's last pass; `nil` where a busy loop is normal (a loop running a long request
    /// itself) or the loop has ended.
    var heartbeat: UInt64? {
        guard !loopEnded.load(ordering: .acquiring), !isBusyWithRequest else { return nil }
        return server.heartbeat.load(ordering: .relaxed)
    }
}
