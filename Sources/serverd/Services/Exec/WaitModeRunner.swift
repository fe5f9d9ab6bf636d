import FamilyServer
import Glibc
import Logging
import Synchronization

/// inetd's wait mode (systemd's `Accept=no`) for one exec listener: serverd neither accepts nor reads. When the
/// socket becomes readable the program starts once with the socket itself as stdin, stdout and descriptor 3, the
/// socket activation variables (`LISTEN_FDS=1`, `LISTEN_PID` its own pid, `LISTEN_FDNAMES` for an inherited socket)
/// and its stderr in the log; the listener ignores the socket until the program exits, then watches it again, so that
/// what is queued meanwhile starts the next run at once.
///
/// A program that keeps exiting at once would be started as fast as data comes: more than `wait-start-limit` starts
/// within ``startWindow`` pause the listener for ``pause``, with one warning; it resumes by itself.
final class WaitModeRunner: Sendable {
    /// The window the start limit counts in.
    static let startWindow = 10.0
    /// How long a listener past its start limit ignores its socket.
    static let pause = 60.0

    private struct State {
        /// The running program's pid (the leader of its process group).
        var pid: pid_t?
        /// Monotonic times of the starts within the last ``startWindow``.
        var starts: [Double] = []
        /// Until when starts are paused (monotonic seconds).
        var pausedUntil = 0.0
    }

    private enum StartDecision {
        case start, wait, pause
    }

    private let context: ListenerContext
    private let state = Mutex(State())
    private let supervisor = ExecSupervisor.shared

    init(context: ListenerContext) {
        self.context = context
    }

    /// The running program's pid, if one runs.
    var runningPID: pid_t? { state.withLock { $0.pid } }

    /// Whether the listener must not watch its socket now: the program runs, or starts are paused.
    var holdsSocket: Bool {
        state.withLock { $0.pid != nil || MonotonicClock.seconds() < $0.pausedUntil }
    }

    /// The socket is readable: starts the program on `socket` unless one runs or starts are paused. `ended` is called
    /// once the program has been reaped (the listener then watches the socket again).
    func socketIsReadable(_ socket: Socket, ended: @escaping @Sendable () -> Void) {
        let snapshot = context.current
        let label = snapshot.label
        let program = snapshot.policy.exec
        let logger = context.logger
        let now = MonotonicClock.seconds()
        let decision = state.withLock { state -> StartDecision in
            guard state.pid == nil, now >= state.pausedUntil else { return .wait }
            state.starts.removeAll { now - $0 >= Self.startWindow }
            guard state.starts.count < snapshot.policy.waitStartLimit else {
                state.starts.removeAll()
                state.pausedUntil = now + Self.pause
                return .pause
            }
            state.starts.append(now)
            return .start
        }
        switch decision {
        case .wait:
            return
        case .pause:
            logger.warning("\(label): \(program[0]) started \(snapshot.policy.waitStartLimit) times within \(ValueSyntax.display(Self.startWindow)) s: pausing the listener for \(ValueSyntax.display(Self.pause)) s")
            return
        case .start:
            break
        }
        // The program gets the socket as systemd would pass it: blocking. serverd only polls it meanwhile, and makes
        // it non-blocking again once the program is gone.
        try? socket.setNonBlocking(false)
        let identity = snapshot.policy.execIdentity
        var activation = ["LISTEN_FDS=1", "LISTEN_PID="]
        if let inheritedName = context.inheritedName { activation.append("LISTEN_FDNAMES=\(inheritedName)") }
        let environment = ExecEnvironment.child(own: activation, identity: identity)
        let pidSlot = 1
        let fd = socket.fileDescriptor
        let child: ExecChild
        do throws(SocketError) {
            child = try ExecChild.start(
                program, environment: environment, descriptors: [fd, fd, -1, fd], identity: identity,
                groups: context.inFlight.groups,
                listenPIDSlot: pidSlot, connectionsInFlight: { 0 }, waiting: { _ in }, pause: { _ in })
        } catch {
            try? socket.setNonBlocking(true)
            logger.error("\(label): cannot start \(program[0]): \(error)")
            return
        }
        let pid = child.pid
        state.withLock { $0.pid = pid }
        logger.info("\(label): started \(program[0]) as pid \(pid) (wait mode)")
        supervisor.watch(child, line: ExecLauncher.logLine(label: label, pid: pid, logger: logger)) { [self] child, status in
            context.inFlight.groups.release(child)
            try? socket.setNonBlocking(true)
            ExecLauncher.logEnd(
                status, failure: child.failure, of: program[0], pid: pid, client: nil, label: label, logger: logger)
            state.withLock { $0.pid = nil }
            ended()
        }
    }

    /// Sends `signal` to the running program's process group (and SIGCONT, so that a stopped one sees it).
    func signal(_ signal: Int32) {
        guard let pid = runningPID else { return }
        kill(-pid, signal)
        kill(-pid, SIGCONT)
    }
}
