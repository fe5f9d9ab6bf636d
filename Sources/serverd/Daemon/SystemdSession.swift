import FamilyServer
import Glibc

/// serverd's conversation with systemd: readiness, status, stopping, reloading, the watchdog
/// (pinged from the control loop, which checks that the serve loops are alive), and `MAINPID=`
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

    /// Seconds between watchdog pings (half of WATCHDOG_USEC), or `nil` when systemd wants none.
    var watchdogInterval: Double? { watchdog?.interval }

    /// `READY=1` with a status line (and `MAINPID=` after `--daemon` detached).
    func ready(status: String) {
        if detached {
            _ = try? notifier.mainPID(getpid())
        }
        _ = try? notifier.ready(status: status)
    }

    /// `STATUS=`.
    func status(_ text: String) { _ = try? notifier.status(text) }

    /// `STOPPING=1`.
    func stopping() { _ = try? notifier.stopping() }

    /// `RELOADING=1` with `MONOTONIC_USEC=`.
    func reloading() { _ = try? notifier.reloading() }

    /// `WATCHDOG=1` if half the watchdog interval passed since the last ping.
    func pingWatchdogIfDue() { _ = try? watchdog?.pingIfDue() }

    /// `ERRNO=` before a failed start exits.
    static func reportFailure(errno code: Int32) {
        _ = try? SystemdNotifier().errno(code)
    }
}
