import FamilyServer
import Glibc
import Logging

/// The running daemon as one state machine:
///
///     starting ──start()──► ready ──SIGHUP──► reloading ──(applied or rolled back)──► ready
///                             │  └──SIGUSR1──► (status block logged) ──► ready
///                             │
///                             ├──SIGTERM/SIGINT──► draining ──(idle, timeout or second signal)──► stopped
///                             └──SIGUSR2──► (ready, upgrading) ──(new process ready)──► draining (handed over)
///                                                 └──(new process failed)──► ready
///
/// Every change of the listeners goes through a ``ReloadPlan`` applied by the ``ListenerSet`` all or nothing;
/// start-up is the plan against nothing running. Effects (notifications, log lines, drain) happen in the transitions.
final class Daemon {
    /// Where the daemon is in its life.
    enum State: Equatable {
        case starting, ready, reloading, draining, stopped
    }

    private(set) var state = State.starting
    private let invocation: Invocation
    private var desired: DesiredState
    private let inherited: InheritedSocketPool
    private let implicitListeners: ImplicitListeners
    private let listeners: ListenerSet
    private let opener: ListenerOpener
    private let signals: SignalReceiver
    private let systemd: SystemdSession
    private let logger: Logger
    private let log: LogControl
    /// The pidfile, the default socket's private directory and the `--user` cleanup helper.
    private let files: DaemonFiles
    /// Reaps exec children and relays their stderr, on the control loop's thread.
    private let execSupervisor = ExecSupervisor.shared
    /// What a binary upgrade starts again.
    private let image: ProgramImage
    /// The binary upgrade in progress (SIGUSR2), while the new process starts.
    private var upgrade: BinaryUpgrade?
    /// The old process, when a binary upgrade started this one.
    private let predecessor: PredecessorLink?
    private var lastStatus = ""
    private var lastStatusTime = 0.0

    /// How often the serve loops run their service actions (reaping, heartbeat) while idle.
    private var pollInterval: Double { min(0.5, systemd.watchdogInterval.map { $0 / 4 } ?? 0.5) }

    init(
        invocation: Invocation, desired: DesiredState, inherited: InheritedSocketPool,
        implicitListeners: ImplicitListeners, signals: SignalReceiver, systemd: SystemdSession, logger: Logger,
        log: LogControl, image: ProgramImage, predecessor: PredecessorLink?
    ) throws(DaemonError) {
        self.image = image
        self.predecessor = predecessor
        self.invocation = invocation
        self.desired = desired
        self.inherited = inherited
        self.implicitListeners = implicitListeners
        self.signals = signals
        self.systemd = systemd
        self.logger = logger
        self.log = log
        listeners = ListenerSet(logger: logger)
        opener = try ListenerOpener(settings: desired.settings, logger: logger, inherited: inherited)
        files = DaemonFiles(
            pidfile: desired.settings.pidfile, implicitListeners: implicitListeners, logger: logger)
    }

    // MARK: - starting → ready

    /// Takes the pidfile, opens every listener, drops privileges (a privileged helper then removes at exit what was
    /// created as root), then reports readiness (the pid in the pidfile, `READY=1`). A failed start closes what it
    /// opened (removing socket files it created) before throwing.
    ///
    /// Started by a binary upgrade, the listeners take the sockets passed down, the pidfile stays the old process's
    /// (which writes this pid in it), and readiness waits for the old process to hand over (``PredecessorLink``).
    func start() throws(DaemonError) {
        let settings = desired.settings
        let started: [Listener]
        let unclaimed: [String]
        do {
            if predecessor == nil {
                try files.acquire()
            } else {
                files.awaitPidfileFromPredecessor()
            }
            let plan = ReloadPlan(desired: desired.listeners, running: [])
            started = try listeners.apply(plan, desired: desired.listeners, opener: opener, pollInterval: pollInterval)
            inherited.warnAboutUnclaimed(desired.listeners, logger: logger)
            unclaimed = inherited.handedOver.closeUnclaimed(logger: logger)
            try files.handOver(listeners.all, user: settings.user)
            try Privileges.drop(user: settings.user, group: settings.group)
            for listener in started { logger.notice("listening on \(listener.listeningText)") }
            if let predecessor {
                try predecessor.handOver()
            } else {
                try files.ready()
            }
        } catch {
            listeners.stopListening()
            files.release()
            throw error
        }
        for listener in listeners.all { listener.ownTakenOverSocketFile() }
        state = .ready
        // Only now: after a binary upgrade, systemd accepts this process's messages once the old one named it main.
        updateFileDescriptorStore(adding: started, removing: unclaimed)
        systemd.ready(status: statusText())
        predecessor?.finish()
    }

    /// Runs the control loop until a stop; returns the exit status.
    func run() -> Int32 {
        while state == .ready {
            if waitForSignalsAndServe() {
                for signal in signals.pending() where state == .ready {
                    switch signal {
                    case SIGHUP: reload()
                    case SIGUSR1: logStatusBlock()
                    case SIGUSR2: startUpgrade()
                    default: drain(after: signal)
                    }
                }
            }
            followUpgrade()
            tick()
        }
        return 0
    }

    // MARK: - ready → reloading → ready

    /// SIGHUP: builds the desired state anew from the command line and the file, checks it as a start would, and
    /// applies the plan from the running listeners. Anything that fails changes nothing; `READY=1` follows either way,
    /// with a `STATUS=` that says which. SIGHUP also reopens the log file.
    private func reload() {
        state = .reloading
        systemd.reloading()
        logger.notice("received SIGHUP: reloading \(invocation.configFile ?? "the command line")")
        var notes: [String] = []
        do {
            var next = try DesiredState.build(invocation, implicitListeners: implicitListeners.specs)
            for option in OptionTable.all where option.scope == .daemon && option.reload == .atRestart {
                if next.daemonValues[option.name] != desired.daemonValues[option.name] {
                    notes.append("\(option.name): a change takes effect at the next start")
                    next.daemonValues[option.name] = desired.daemonValues[option.name]
                }
            }
            try ListenerPrecheck.check(next, inherited: inherited)
            let plan = ReloadPlan(desired: next.listeners, running: listeners.identities)
            let started = try listeners.apply(plan, desired: next.listeners, opener: opener, pollInterval: pollInterval)
            updateFileDescriptorStore(adding: started, removing: plan.remove.compactMap(\.handOverName))
            desired = next
            notes += log.reload(level: next.settings.logLevel, destination: next.settings.logDestination)
            for listener in started { logger.notice("listening on \(listener.listeningText)") }
            for note in notes { logger.warning("reload: \(note)") }
            logger.notice(
                "reloaded: \(plan.update.count) kept, \(plan.add.count) added, \(plan.remove.count) removed")
            state = .ready
            systemd.ready(status: statusText())
        } catch {
            // The running settings stay; the log file is still reopened (logrotate sent this SIGHUP, perhaps).
            notes += log.reload(level: desired.settings.logLevel, destination: desired.settings.logDestination)
            for note in notes { logger.warning("reload: \(note)") }
            logger.error("reload failed, keeping the running configuration: \(error.message)")
            state = .ready
            systemd.ready(status: "Reload failed: \(error.message). " + statusText())
        }
    }

    // MARK: - The fd store

    /// `fd-store` under systemd: hands the sockets of `started` that serverd bound itself (or took over) to systemd's
    /// fd store under their listener names (``ListenerIdentity/handOverName``), and removes the names in `removed`.
    /// At the next start, after a restart or a crash, they come back and are taken over by name
    /// (``HandedOverSockets``). A failure is logged; serving goes on.
    private func updateFileDescriptorStore(adding started: [Listener], removing removed: [String]) {
        guard desired.settings.fdStore, systemd.isConnected else { return }
        for listener in started where !listener.inherited {
            guard let name = listener.identity.handOverName else { continue }
            do {
                try systemd.store(listener.server.fileno, name: name)
            } catch {
                logger.warning("fd-store: \(listener.listeningText): \(error)")
            }
        }
        for name in Set(removed) {
            do {
                try systemd.removeStored(name: name)
            } catch {
                logger.warning("fd-store: removing '\(name)': \(error)")
            }
        }
    }

    // MARK: - SIGUSR2: binary upgrade

    /// SIGUSR2: starts the binary at serverd's own path with every listening socket (``BinaryUpgrade``); serving
    /// goes on meanwhile. A second SIGUSR2 while one runs is ignored.
    private func startUpgrade() {
        if let upgrade {
            logger.warning("received SIGUSR2: the upgrade to pid \(upgrade.pid) is still in progress; ignored")
            return
        }
        let settings = desired.settings
        if settings.user != nil || settings.group != nil {
            logger.error(
                """
                SIGUSR2: upgrade failed: not possible with --user or --group (the new binary would start without \
                the privileges a start needs); still serving
                """)
            return
        }
        var passed: [BinaryUpgrade.PassedSocket] = []
        for (identity, group) in listeners.serving {
            guard let name = identity.handOverName else { continue }
            for listener in group {
                let descriptors = listener.passedDescriptors
                passed.append(.init(fd: descriptors.socket, name: name, lockDescriptor: descriptors.lock))
            }
        }
        for (fd, name) in inherited.named { passed.append(.init(fd: fd, name: name)) }
        logger.notice("received SIGUSR2: starting \(image.path) with \(passed.count) sockets")
        do {
            upgrade = try BinaryUpgrade.start(image, passing: passed, logger: logger)
        } catch {
            logger.error("SIGUSR2: upgrade failed: \(error); still serving")
        }
    }

    /// Follows the upgrade in progress, once per pass of the control loop: when the new process is ready, the
    /// pidfile and systemd (`MAINPID=`) name it, it is told so, and this process drains and exits 0; when it failed,
    /// it is ended and this process serves on.
    private func followUpgrade() {
        guard let upgrade else { return }
        var failure: String
        switch upgrade.progress() {
        case .starting:
            return
        case .failed(let reason):
            failure = reason
        case .ready:
            do {
                try files.handOverPidfile(to: upgrade.pid)
                systemd.announceMainPID(upgrade.pid)
                upgrade.complete()
                self.upgrade = nil
                drain(after: SIGUSR2, handingOverTo: upgrade.pid)
                return
            } catch {
                failure = error.message
            }
        }
        upgrade.abandon()
        self.upgrade = nil
        logger.error("SIGUSR2: upgrade failed: \(failure); still serving")
    }

    // MARK: - ready → draining → stopped

    /// The graceful stop of SPEC section 3: `STOPPING=1`, listeners closed (their socket files removed), in-flight
    /// connections given `drain-timeout`, a second signal cutting it short. Then every exec process group still
    /// alive gets SIGTERM, and SIGKILL after a short grace: no process serverd started outlives it.
    ///
    /// After a binary upgrade (`successor`) the listeners' socket files, their lock files and the pidfile stay for
    /// the new process, and systemd, which follows the new main process, is not told `STOPPING=1`.
    private func drain(after signal: Int32, handingOverTo successor: pid_t? = nil) {
        state = .draining
        let drainTimeout = desired.settings.drainTimeout.seconds
        let draining = "draining connections for up to \(ValueSyntax.display(drainTimeout)) s"
        if let upgrade {
            logger.notice("the upgrade to pid \(upgrade.pid) is called off")
            upgrade.abandon()
            self.upgrade = nil
        }
        if let successor {
            logger.notice("SIGUSR2: pid \(successor) serves now; stopping, \(draining)")
            listeners.handOver()
        } else {
            systemd.stopping()
            logger.notice("received signal \(signal): stopping, \(draining)")
            if desired.settings.fdStore && systemd.isConnected {
                // The fd store keeps the sockets for a restart: their files stay too (a full stop leaves them stale,
                // and the next start replaces them).
                listeners.handOver()
            } else {
                listeners.stopListening()
            }
        }
        let all = listeners.everyListener
        let deadline = MonotonicClock.seconds() + drainTimeout
        var drained = false
        while true {
            if all.allSatisfy(\.isIdle) {
                drained = true
                break
            }
            if MonotonicClock.seconds() >= deadline {
                logger.warning("drain timeout reached: closing the remaining connections")
                break
            }
            waitForSignalsAndChildren(timeout: 0.01)
            let pending = signals.pending()
            if pending.contains(SIGUSR1) { logStatusBlock() }
            if pending.contains(where: { $0 == SIGTERM || $0 == SIGINT }) {
                logger.notice("second stop signal: closing the remaining connections")
                break
            }
            // After a hand-over the new process is the main one: systemd would refuse (and log) this one's pings.
            if successor == nil { systemd.pingWatchdogIfDue() }
        }
        if !drained {
            for listener in all { listener.cutShort() }
        }
        ExecProcessGroups.shared.end(logger: logger) { [execSupervisor] in execSupervisor.serviceEvents() }
        if !drained {
            let cutDeadline = MonotonicClock.seconds() + 2
            while !all.allSatisfy(\.isIdle) && MonotonicClock.seconds() < cutDeadline {
                waitForSignalsAndChildren(timeout: 0.02)
            }
        }
        inherited.handedOver.removeLeftoverFiles(logger: logger)
        files.release(handedOver: successor != nil)
        logger.notice("stopped")
        state = .stopped
    }

    // MARK: - The control loop's pass

    /// Waits up to `timeout` for a signal, reaping exec children meanwhile (during a drain).
    private func waitForSignalsAndChildren(timeout: Double) {
        let supervised = execSupervisor.descriptor >= 0 ? [execSupervisor.descriptor] : []
        _ = try? Poll.readable([signals.fileDescriptor] + supervised, timeout: timeout)
        execSupervisor.serviceEvents()
    }

    /// Waits for a signal, serving meanwhile the listeners the control loop serves (see
    /// ``Listener/servedByControlLoop``) and reaping exec children (``ExecSupervisor``). Returns whether a signal may
    /// be pending (the signalfd was readable, or the wait failed).
    private func waitForSignalsAndServe() -> Bool {
        let served = listeners.all.filter(\.servedByControlLoop)
        var descriptors = [signals.fileDescriptor]
        var owners: [Listener?] = [nil]
        if execSupervisor.descriptor >= 0 {
            descriptors.append(execSupervisor.descriptor)
            owners.append(nil)
        }
        for descriptor in upgrade?.descriptors ?? [] {
            descriptors.append(descriptor)
            owners.append(nil)
        }
        var atCapacity = false
        var wakeup = Double.infinity
        for listener in served {
            let own = listener.server.readinessDescriptors
            atCapacity = atCapacity || listener.server.needsPolling
            // A rate-limited listener's next token, a held connection's turn: due whether or not a descriptor wakes.
            wakeup = min(wakeup, listener.server.nextWakeup ?? .infinity)
            descriptors += own
            owners += Array(repeating: listener, count: own.count)
        }
        // A forked worker that crashed wakes nobody, nor does a child without a pidfd: while one is needed, look
        // again soon.
        let looking = atCapacity || execSupervisor.looksForExits
        var timeout = looking ? min(controlTimeout, ExecSupervisor.lookInterval) : controlTimeout
        if wakeup < .infinity { timeout = min(timeout, max(0, wakeup - MonotonicClock.seconds())) }
        guard let ready = try? Poll.readable(descriptors, timeout: timeout) else { return true }
        execSupervisor.serviceEvents()
        var servedNow = Set<ObjectIdentifier>()
        for (index, isReady) in ready.enumerated() where isReady {
            guard let listener = owners[index], servedNow.insert(ObjectIdentifier(listener)).inserted else { continue }
            listener.server.serveReadyRequests()
        }
        for listener in served { listener.server.serviceActions() }
        return ready[0]
    }

    /// How long the control loop waits for a signal: at most a second, and no longer than until the next watchdog
    /// ping is due. At least 20 ms, so that serve loops that stopped passing (no ping then) do not make it spin.
    private var controlTimeout: Double {
        guard let due = systemd.secondsUntilWatchdogDue else { return 1 }
        return min(1, max(0.02, due))
    }

    /// Watchdog and status, once per pass of the control loop.
    private func tick() {
        guard state == .ready else { return }
        files.takePidfileIfPending()
        if systemd.isWatchdogDue && servingLoopsAreAlive() && reactorsAreAlive() { systemd.pingWatchdogIfDue() }
        let now = MonotonicClock.seconds()
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
        let now = UInt64(MonotonicClock.seconds() * 1e6)
        let allowance = UInt64(interval * 1e6)
        return listeners.all.allSatisfy { listener in
            guard let beat = listener.heartbeat, beat > 0 else { return true }
            return now &- beat < allowance
        }
    }

    /// The event model's reactors have all completed a pass of their loop within the last quarter of the watchdog
    /// interval. Asked only when a ping is due, so that idle reactors are woken once per interval at most: the quiet
    /// ones are woken (``EventReactors/heartbeatsAreFresh(since:)``) and an idle one counts at the next pass of the
    /// control loop, 20 ms later (``controlTimeout``); a reactor stuck in a handler holds the pings back.
    private func reactorsAreAlive() -> Bool {
        guard let reactors = opener.reactors, let interval = systemd.watchdogInterval else { return true }
        let now = MonotonicClock.microseconds()
        let window = UInt64(interval / 4 * 1e6)
        return reactors.heartbeatsAreFresh(since: now > window ? now - window : 0)
    }

    /// The `STATUS=` line (``StatusReport/summary``).
    private func statusText() -> String {
        StatusReport(serving: listeners.all, retired: listeners.retired, model: desired.settings.model).summary
    }

    /// SIGUSR1: logs the status block (``StatusReport/block``) at notice, and serving goes on.
    private func logStatusBlock() {
        let report = StatusReport(serving: listeners.all, retired: listeners.retired, model: desired.settings.model)
        logger.notice("\(report.block)")
    }
}
