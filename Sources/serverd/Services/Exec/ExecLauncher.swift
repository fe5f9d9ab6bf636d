import FamilyServer
import Glibc
import Logging
import Synchronization

/// Runs the listener's program once per connection (UCSPI style): the connection on its stdin and stdout, its
/// stderr line by line into the log, the UCSPI variables in its environment, no other descriptor open, in a process
/// group of its own. The serving thread only starts the child (``ExecChild``, no copy of the daemon) and hands it to
/// the ``ExecSupervisor``, which reaps it; no thread waits for it. When the child exits its end is logged and the
/// connection is shut down and closed, even if a process the child left in the background still holds its stderr
/// (or the connection). Its connection line (``ConnectionRecord``) carries the exit status or signal and the duration,
/// no byte counts: the bytes pass between the client and the program.
final class ExecLauncher: Sendable {
    private let context: ListenerContext
    private let supervisor = ExecSupervisor.shared
    /// Children not reaped yet, and starts waiting for a client's name.
    private let running = Atomic<Int>(0)
    /// The connections of each client address in flight, for `TCPCONNNUM`.
    private let perAddress = ConditionLock<[IPAddress: Int]>([:])
    /// Whether programs may still start: cleared when the listener closes, so that a start that waited for a
    /// client's name never comes after the stop that ended every child.
    private let starting = ConditionLock(true)

    init(context: ListenerContext) {
        self.context = context
    }

    /// Children of this listener not reaped yet, and starts waiting for a client's name: each counts as a connection
    /// in flight.
    var childrenRunning: Int { running.load(ordering: .relaxed) }

    /// Starts the program for `connection` from `client`, accepted on `listener`. Returns whether it runs (or will
    /// run once the client's name is known, with `resolve`); then the connection is the launcher's, and `ended` is
    /// called once the child has been reaped and the connection closed. When it returns false the failure is logged
    /// and the connection is still the caller's to close.
    func launch(
        _ connection: Socket, client: SocketAddress, listener: SocketAddress, ended: @escaping @Sendable () -> Void
    ) -> Bool {
        let snapshot = context.current
        let address = client.ip.map { $0.mappedIPv4 ?? $0 }
        let number = count(address, by: 1)
        let finished: @Sendable () -> Void = { [self] in
            count(address, by: -1)
            ended()
        }
        guard snapshot.policy.resolve, address != nil else {
            let started = start(connection, client: client, listener: listener, snapshot: snapshot, number: number, remoteHost: nil, ended: finished)
            if !started { count(address, by: -1) }
            return started
        }
        running.add(1, ordering: .relaxed)
        RemoteHostName.lookUp(client) { [self] name in
            let started = starting.withLock { open in
                open && start(connection, client: client, listener: listener, snapshot: snapshot, number: number, remoteHost: name, ended: finished)
            }
            running.subtract(1, ordering: .relaxed)
            if !started {
                try? connection.shutdown(Int32(SHUT_RDWR))
                connection.close()
                finished()
            }
        }
        return true
    }

    /// No program starts any more (the listener closed).
    func stopStarting() {
        starting.withLock { $0 = false }
    }

    /// Adds `change` to the connections of `address`; returns the new count.
    @discardableResult
    private func count(_ address: IPAddress?, by change: Int) -> Int {
        guard let address else { return 1 }
        return perAddress.withLock { counts in
            let now = counts[address, default: 0] + change
            counts[address] = now > 0 ? now : nil
            return now
        }
    }

    /// Starts the child at once: see ``launch(_:client:listener:ended:)``.
    private func start(
        _ connection: Socket, client: SocketAddress, listener: SocketAddress, snapshot: ListenerContext.Snapshot,
        number: Int, remoteHost: String?, ended: @escaping @Sendable () -> Void
    ) -> Bool {
        let program = snapshot.policy.exec
        let label = snapshot.label
        let logger = context.logger
        let inFlight = context.inFlight
        let supervisor = supervisor
        let identity = snapshot.policy.execIdentity
        let environment = ExecEnvironment.child(
            own: ExecEnvironment.ucspi(
                for: connection, client: client, listener: listener, connectionNumber: number, remoteHost: remoteHost),
            identity: identity)
        let started = MonotonicClock.seconds()
        let service = snapshot.policy.service
        let record = context.logsConnections(snapshot.policy)
            ? ConnectionRecord(
                listener: "\(service.rawValue)@\(listener)", service: service, peer: .of(connection, client: client),
                end: .error, duration: 0)
            : nil
        let child: ExecChild
        inFlight.begin(connection)
        do throws(SocketError) {
            child = try ExecChild.start(
                program, environment: environment, descriptors: [connection.fileDescriptor, connection.fileDescriptor],
                identity: identity, groups: inFlight.groups, connectionsInFlight: { inFlight.connectionsInProcess },
                waiting: { shortage in
                    logger.warning("\(label): out of descriptors for \(client) (\(shortage)): waiting up to \(ExecChild.descriptorPatience) s")
                },
                pause: { seconds in
                    // Children that end meanwhile free descriptors: reap them (unless another thread does).
                    _ = try? Poll.readable(supervisor.descriptor >= 0 ? [supervisor.descriptor] : [], timeout: seconds)
                    supervisor.serviceEvents()
                })
        } catch {
            inFlight.end(connection)
            logger.error("\(label): connection from \(client): cannot start \(program[0]): \(error)")
            record?.ended(status: nil, after: MonotonicClock.seconds() - started, logger: logger)
            return false
        }
        running.add(1, ordering: .relaxed)
        let pid = child.pid
        logger.debug("\(label): started \(program[0]) as pid \(pid) for \(client)")
        supervisor.watch(child, line: Self.logLine(label: label, pid: pid, logger: logger)) { [self] child, status in
            inFlight.groups.release(child)
            Self.logEnd(
                status, failure: child.failure, of: program[0], pid: pid, client: client, label: label, logger: logger,
                connectionLineFollows: record != nil)
            let ran = child.failure == 0 ? status : nil
            record?.ended(status: ran, after: MonotonicClock.seconds() - started, logger: logger)
            try? connection.shutdown(Int32(SHUT_WR))
            connection.close()
            inFlight.end(connection)
            running.subtract(1, ordering: .relaxed)
            ended()
        }
        return true
    }

    /// What logs each line a child writes to stderr: `LABEL: pid N: TEXT`, a piece of a longer line marked as cut.
    static func logLine(label: String, pid: pid_t, logger: Logger) -> @Sendable (StandardErrorRelay.Line) -> Void {
        let cut = StandardErrorRelay().maximumLineLength
        return { line in
            let note = line.isCut ? " [cut at \(cut) bytes, continued]" : ""
            logger.warning("\(label): pid \(pid): \(line.text)\(note)")
        }
    }

    /// Logs how a child ended (`status` from waitpid): exit status 0 at info (at debug when the connection's line,
    /// which carries the status, follows), anything else as a warning, and a `failure` (the errno that kept it from
    /// running the program) as an error, once.
    static func logEnd(
        _ status: Int32, failure: Int32, of program: String, pid: pid_t, client: SocketAddress?, label: String,
        logger: Logger, connectionLineFollows: Bool = false
    ) {
        if failure != 0 {
            let served = client.map { " for \($0)" } ?? ""
            logger.error("\(label): cannot run \(program)\(served): \(String(cString: strerror(failure))) (errno \(failure))")
            return
        }
        let signal = status & 0x7f
        var served: String { client.map { " for \($0)" } ?? "" }
        if signal != 0 {
            logger.warning("\(label): \(program) (pid \(pid))\(served) killed by signal \(signal)")
            return
        }
        let code = (status >> 8) & 0xff
        let level: Logger.Level = code != 0 ? .warning : connectionLineFollows ? .debug : .info
        logger.log(level: level, "\(label): \(program) (pid \(pid))\(served) exited with status \(code)")
    }
}
