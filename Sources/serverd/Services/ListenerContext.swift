import FamilyServer
import Synchronization
import Logging

/// What a service handler needs to know about the listener that accepted its request: the listener's current
/// policy, its name for messages, the log, and what is in flight.
///
/// A reload that keeps the listener replaces the policy here (``update(_:)``); each connection reads it once, when it
/// starts, so that new values apply to new connections and open ones finish under the values they started with.
final class ListenerContext: Sendable {
    /// One declaration's policy and label, replaced whole by a reload: reading it costs a lock and one retain.
    final class Snapshot: Sendable {
        /// The policy new connections (and each datagram) get.
        let policy: ListenerPolicy
        /// `SERVICE@ADDRESS` as declared, for messages.
        let label: String

        init(_ declaration: ListenerDeclaration) {
            policy = declaration.policy
            label = declaration.text
        }
    }

    private let snapshot: ConditionLock<Snapshot>
    /// Where the service logs.
    let logger: Logger
    /// Connections and exec children in flight, for a drain that has to cut them short.
    let inFlight = InFlightRegistry()
    /// The listener's counts for the status block and `STATUS=`; a reload that keeps the listener keeps them.
    let counters = ListenerCounters()

    /// The fd name of an inherited socket (systemd's `LISTEN_FDNAMES`), passed on to a wait-mode program.
    let inheritedName: String?

    init(_ declaration: ListenerDeclaration, logger: Logger, inheritedName: String? = nil) {
        snapshot = ConditionLock(Snapshot(declaration))
        self.logger = logger
        self.inheritedName = inheritedName
    }

    /// The current policy and label.
    var current: Snapshot { snapshot.withLock { $0 } }

    /// The policy new connections get: a copy, which retains each of its arrays. A hot path reads the fields it needs
    /// in place (``current``'s `policy.FIELD`, ``maxRate``).
    var policy: ListenerPolicy { current.policy }

    /// `max-rate` of the current policy, read in place (asked for each request and each pass of the serve loop).
    var maxRate: Int { current.policy.maxRate }

    /// `SERVICE@ADDRESS` as declared, for messages.
    var label: String { current.label }

    /// Whether a connection under `policy` gets its connection line: `log-connections` is on and the log takes info
    /// lines (otherwise nothing of the line, not even the peer's credentials, is worked out).
    func logsConnections(_ policy: ListenerPolicy) -> Bool {
        policy.logConnections && logger.logLevel <= .info
    }

    /// Makes a reloaded declaration the one new connections get.
    func update(_ declaration: ListenerDeclaration) {
        let fresh = Snapshot(declaration)
        snapshot.withLock { $0 = fresh }
    }
}

/// A server that serves one configured listener.
protocol ServesListener: BaseServer {
    /// The listener it serves.
    var context: ListenerContext { get }
    /// Monotonic time (µs) of the serve loop's last pass, for the watchdog.
    var heartbeat: Atomic<UInt64> { get }
    /// Applies a reloaded declaration to what the server itself holds (the context is updated by the caller).
    func apply(_ policy: ListenerPolicy)
    /// Connections in flight: the processing model's requests, and exec children not reaped yet (a wait-mode
    /// program counts as one).
    var connectionsInFlight: Int { get }
    /// The listener's wait-mode program, when its policy says `wait`.
    var waitMode: WaitModeRunner { get }
}

extension ServesListener {
    /// In wait mode, and the socket is readable now: hands it to the program (unless one runs or starts are
    /// paused) and returns true. The serve loop asks before it takes a request, since serverd never accepts or reads
    /// in wait mode.
    /// - Parameter current: The listener's policy as the caller read it already (``ListenerContext/current``).
    func handedToWaitModeProgram(_ current: ListenerContext.Snapshot? = nil) -> Bool {
        let current = current ?? context.current
        guard current.policy.service == .exec && current.policy.waitMode else { return false }
        if (try? Poll.readable([socket.fileDescriptor], timeout: 0))?.first == true {
            waitMode.socketIsReadable(socket) { [self] in wake() }
        }
        return true
    }
}

extension BaseRequestHandler {
    /// The listener context of the daemon's server that created this handler.
    var context: ListenerContext { (server as! any ServesListener).context }
}
