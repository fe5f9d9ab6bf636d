import FamilyServer
import Glibc
import Logging

/// The running daemon: its listeners, and the control loop that handles signals (stop, reload),
/// systemd notifications (readiness, status, watchdog) and the graceful drain.
final class Daemon {
    private let command: ServerdCommand
    private var configuration: DaemonConfiguration
    private let logger: Logger
    private let logLevel: LogLevelControl
    private let signals: SignalReceiver
    private let systemd: SystemdSession
    private var factory: ListenerFactory
    private var listeners: [Listener] = []
    /// Listeners a reload removed: no longer accepting, but still draining their connections.
    private var retired: [Listener] = []
    /// The pidfile, the default socket's private directory and the `--user` cleanup helper.
    private let files: DaemonFiles
    private var lastStatus = ""
    private var lastStatusTime = 0.0

    /// How often the serve loops run their service actions (reaping, heartbeat) while idle.
    private var pollInterval: Double { min(0.5, systemd.watchdogInterval.map { $0 / 4 } ?? 0.5) }

    init(
        command: ServerdCommand, configuration: DaemonConfiguration, inherited: InheritedSocketPool,
        signals: SignalReceiver, systemd: SystemdSession, logger: Logger, logLevel: LogLevelControl,
        workingDirectory: String, runtimeDirectory: PrivateRuntimeDirectory? = nil
    ) {
        self.logLevel = logLevel
        self.command = command
        self.configuration = configuration
        self.logger = logger
        self.signals = signals
        self.systemd = systemd
        self.factory = ListenerFactory(
            model: configuration.model, logger: logger, inherited: inherited, baseDirectory: workingDirectory)
        self.files = DaemonFiles(pidfile: configuration.pidfile, runtimeDirectory: runtimeDirectory, logger: logger)
    }

    /// Takes the pidfile, binds or adopts every listener, drops privileges (a privileged helper
    /// then removes at exit what was created as root), starts serving, then reports readiness
    /// (the pid in the pidfile, `READY=1`, the `--daemon` parent).
    /// A failed start closes what it had opened (removing socket files it created) before throwing.
    func start() throws(DaemonError) {
        do {
            try files.acquire()
            factory.inherited.reserve(configuration.listeners)
            for configuration in configuration.listeners {
                listeners += try factory.make(configuration)
            }
            factory.inherited.warnAboutUnclaimed(logger: logger)
            try files.handOver(listeners, user: configuration.user)
            try Privileges.drop(user: configuration.user, group: configuration.group)
            for listener in listeners {
                try begin(listener)
            }
            try files.ready()
        } catch {
            for listener in listeners { listener.stopListening() }
            files.release()
            throw error
        }
        systemd.ready(status: statusText())
    }

    private func begin(_ listener: Listener) throws(DaemonError) {
        do {
            try listener.start(pollInterval: pollInterval)
        } catch {
            throw DaemonError(.osError, "\(listener.configuration.text): cannot start its serve loop: \(error)")
        }
        logger.notice("listening on \(listener.listeningText)")
    }

    /// Runs the control loop until a stop signal; returns the exit status.
    func run() -> Int32 {
        while true {
            waitForSignalsAndServe()
            for signal in signals.pending() {
                if signal == SIGHUP {
                    reload()
                } else {
                    return stop(after: signal)
                }
            }
            tick()
        }
    }

    /// Waits for a signal, serving meanwhile the listeners the control loop serves (the forking
    /// model's: see ``Listener/servedByControlLoop``).
    private func waitForSignalsAndServe() {
        let served = listeners.filter(\.servedByControlLoop)
        var descriptors = [signals.fileDescriptor]
        var owners: [Listener?] = [nil]
        var atCapacity = false
        for listener in served {
            let own = listener.server.readinessDescriptors
            atCapacity = atCapacity || own.count < 2
            descriptors += own
            owners += Array(repeating: listener, count: own.count)
        }
        // A forked worker that crashed wakes nobody: while one is needed, look again soon.
        let timeout = atCapacity ? min(controlTimeout, 0.05) : controlTimeout
        guard let ready = try? pollReadable(descriptors, timeout: timeout) else { return }
        var servedNow = Set<ObjectIdentifier>()
        for (index, isReady) in ready.enumerated() where isReady {
            guard let listener = owners[index], servedNow.insert(ObjectIdentifier(listener)).inserted else { continue }
            listener.server.serveReadyRequests()
        }
        for listener in served { listener.server.serviceActions() }
    }

    /// How long the control loop waits for a signal: at most a second, and no longer than until
    /// the next watchdog ping is due — a signal that woke the loop just before a ping must not
    /// postpone it by a whole interval, to nearly WATCHDOG_USEC. At least 20 ms, so that serve
    /// loops that stopped passing (no ping then) do not make it spin.
    private var controlTimeout: Double {
        guard let due = systemd.secondsUntilWatchdogDue else { return 1 }
        return min(1, max(0.02, due))
    }

    /// Watchdog and status, once per pass of the control loop.
    private func tick() {
        if servingLoopsAreAlive() { systemd.pingWatchdogIfDue() }
        let now = monotonicSeconds()
        if now - lastStatusTime >= 1 {
            let status = statusText()
            if status != lastStatus {
                systemd.status(status)
                lastStatus = status
            }
            lastStatusTime = now
        }
    }

    /// The serve loops that should never block for long have all passed by recently.
    private func servingLoopsAreAlive() -> Bool {
        guard let interval = systemd.watchdogInterval else { return true }
        let now = UInt64(monotonicSeconds() * 1e6)
        let allowance = UInt64(interval * 1e6)
        return listeners.allSatisfy { listener in
            guard let beat = listener.heartbeat, beat > 0 else { return true }
            return now &- beat < allowance
        }
    }

    private func statusText() -> String {
        let connections = (listeners + retired).reduce(0) { $0 + $1.activeRequests }
        let noun = listeners.count == 1 ? "listener" : "listeners"
        return "Serving \(listeners.count) \(noun), \(connections) active connection\(connections == 1 ? "" : "s")"
    }

    // MARK: - Stop

    /// The graceful stop of SPEC section 3: `STOPPING=1`, listeners closed (their socket files
    /// removed), in-flight connections given `--drain-timeout`, a second signal cutting it short.
    /// Then every exec process group still alive gets SIGTERM, and SIGKILL after a short grace
    /// (``ExecProcessGroups/end(logger:)``): no process serverd started outlives it.
    private func stop(after signal: Int32) -> Int32 {
        systemd.stopping()
        logger.notice("received signal \(signal): stopping, draining connections for up to \(configuration.drainTimeout) s")
        for listener in listeners { listener.stopListening() }
        let all = listeners + retired
        let deadline = monotonicSeconds() + configuration.drainTimeout
        var drained = false
        while true {
            if all.allSatisfy(\.isIdle) {
                drained = true
                break
            }
            if monotonicSeconds() >= deadline {
                logger.warning("drain timeout reached: closing the remaining connections")
                break
            }
            _ = try? pollReadable([signals.fileDescriptor], timeout: 0.01)
            if signals.pending().contains(where: { $0 != SIGHUP }) {
                logger.notice("second stop signal: closing the remaining connections")
                break
            }
            systemd.pingWatchdogIfDue()
        }
        if !drained {
            for listener in all { listener.cutShort() }
        }
        // Drained or not: exec children still running and what they left in the background.
        ExecProcessGroups.shared.end(logger: logger)
        if !drained {
            let cutDeadline = monotonicSeconds() + 2
            while !all.allSatisfy(\.isIdle) && monotonicSeconds() < cutDeadline {
                _ = try? pollReadable([], timeout: 0.02)
            }
        }
        files.release()
        logger.notice("stopped")
        return 0
    }

    // MARK: - Reload

    /// SIGHUP: re-reads `--config` and applies the difference. Unchanged listeners keep their
    /// sockets and connections, removed ones stop accepting (their connections finish), new ones
    /// start. An invalid configuration changes nothing.
    private func reload() {
        systemd.reloading()
        logger.notice("received SIGHUP: reloading \(configuration.configFile ?? "the command line")")
        defer { systemd.ready(status: statusText()) }
        let updated: DaemonConfiguration
        do {
            updated = try DaemonConfiguration.load(from: command)
        } catch {
            logger.error("reload failed, keeping the running configuration: \(error.message)")
            return
        }
        let wanted = updated.listeners
        var kept: [Listener] = []
        for listener in listeners {
            if wanted.contains(where: { $0.isEquivalent(to: listener.configuration) }) {
                kept.append(listener)
            } else {
                logger.notice("reload: closing \(listener.listeningText)")
                listener.stopListening()
                retired.append(listener)
            }
        }
        listeners = kept
        retired.removeAll { $0.isIdle }
        factory.model = updated.model
        logLevel.set(updated.logLevel.loggerLevel)
        for configuration in wanted where !kept.contains(where: { $0.configuration.isEquivalent(to: configuration) }) {
            do {
                for listener in try factory.make(configuration) {
                    try begin(listener)
                    listeners.append(listener)
                }
            } catch {
                logger.error("reload: cannot start \(configuration.text): \(error.message)")
            }
        }
        configuration = updated
    }
}
