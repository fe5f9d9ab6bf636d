import FamilyServer
import Glibc

/// serverd's conversation with systemd: readiness, status, stopping, reloading, the watchdog
/// (pinged from the control loop, which checks that the serve loops and event reactors are alive), and `MAINPID=`
/// when `--daemon` detached. Every message is a no-op without NOTIFY_SOCKET; a notify socket
/// that fails is logged once per message kind at most, never fatal.
final class SystemdSession {
    private let notifier = SystemdNotifier()
    private let watchdog: Watchdog?
    private let detached: Bool

    init(detached: Bool) {
        self.detached = detached
        self.watchdog = try? Watchdog.fromEnvironment(notifier: notifier)
    }

    /// The `now` (monotonic µs) of the last watchdog ping attempt, exactly as ``Watchdog`` counts it.
    private var lastPing: UInt64?

    /// Seconds between watchdog pings (half of WATCHDOG_USEC), or `nil` when systemd wants none.
    var watchdogInterval: Double? { watchdog?.interval }

    /// Seconds until the next watchdog ping is due (0 when it is due now, as before the first),
    /// or `nil` when systemd wants none: the control loop sleeps no longer than this, so that a
    /// signal waking it just before a ping does not postpone the ping by a whole interval.
    var secondsUntilWatchdogDue: Double? {
        guard let watchdog else { return nil }
        guard let lastPing else { return 0 }
        let due = lastPing + watchdog.intervalMicroseconds
        let now = MonotonicClock.microseconds()
        return due > now ? Double(due - now) / 1e6 : 0
    }

    /// Whether a watchdog ping is due now (``pingWatchdogIfDue()`` would send it).
    var isWatchdogDue: Bool { secondsUntilWatchdogDue == 0 }

    /// `READY=1` with a status line (and `MAINPID=` after `--daemon` detached).
    func ready(status: String) {
        if detached {
            _ = try? notifier.mainPID(getpid())
        }
        _ = try? notifier.ready(status: status)
    }

    /// `MAINPID=pid`: a binary upgrade hands the service over to the new process.
    func announceMainPID(_ pid: pid_t) { _ = try? notifier.mainPID(pid) }

    /// Whether systemd listens (`NOTIFY_SOCKET` is set).
    var isConnected: Bool { notifier.isEnabled }

    /// `FDSTORE=1` with `FDNAME=name` and `FDPOLL=0` (a listening socket is never dropped for POLLHUP): systemd keeps
    /// a duplicate of `fd` and passes it back at the next start. Silently dropped by a unit without
    /// `FileDescriptorStoreMax=`.
    /// - Throws: ``SocketError`` for `sd_pid_notify_with_fds`.
    func store(_ fd: Int32, name: String) throws(SocketError) {
        try notifier.storeDescriptors([fd], name: name, poll: false)
    }

    /// `FDSTOREREMOVE=1` with `FDNAME=name`.
    /// - Throws: ``SocketError`` for `sd_notify`.
    func removeStored(name: String) throws(SocketError) {
        try notifier.removeStoredDescriptors(name: name)
    }

    /// `STATUS=`.
    func status(_ text: String) { _ = try? notifier.status(text) }

    /// `STOPPING=1`.
    func stopping() { _ = try? notifier.stopping() }

    /// `RELOADING=1` with `MONOTONIC_USEC=`.
    func reloading() { _ = try? notifier.reloading() }

    /// `WATCHDOG=1` if half the watchdog interval passed since the last ping.
    func pingWatchdogIfDue() {
        guard let watchdog else { return }
        let now = MonotonicClock.microseconds()
        if let lastPing, now >= lastPing, now - lastPing < watchdog.intervalMicroseconds { return }
        lastPing = now
        _ = try? watchdog.pingIfDue(now: now)
    }

    /// `ERRNO=` before a failed start exits.
    static func reportFailure(errno code: Int32) {
        _ = try? SystemdNotifier().errno(code)
    }
}
