import CSystemd
import Glibc
import Synchronization

/// The service watchdog (`WatchdogSec=`): pings `WATCHDOG=1` every half of `WATCHDOG_USEC`.
///
/// Made by ``fromEnvironment(notifier:)``, which uses libsystemd's `sd_watchdog_enabled` and so
/// honours `WATCHDOG_PID`: when it names another process, there is no watchdog for this one.
///
/// There is deliberately no timer thread. Call ``pingIfDue(now:)`` from the serve loop itself —
/// for a ``BaseServer``, from an override of ``BaseServer/serviceActions()``, which runs on every
/// pass — so that a wedged loop stops pinging and systemd restarts the daemon. Keep the loop's
/// poll interval at most ``recommendedPollInterval`` so that a due ping is never late.
///
/// Thread-safe: several loops may share one watchdog; within an interval, only the first call
/// that finds a ping due sends it.
public final class Watchdog: Sendable {
    /// `WATCHDOG_USEC`: how long systemd waits for a ping before it considers the daemon hung.
    public let timeoutMicroseconds: UInt64
    private let notifier: SystemdNotifier
    /// The monotonic time of the last ping attempt (µs); `UInt64.max` before the first.
    private let lastPing = Atomic<UInt64>(UInt64.max)

    /// A watchdog that pings through `notifier` every `timeoutMicroseconds / 2`.
    public init(timeoutMicroseconds: UInt64, notifier: SystemdNotifier = SystemdNotifier()) {
        self.timeoutMicroseconds = timeoutMicroseconds
        self.notifier = notifier
    }

    /// The watchdog systemd asks for, or `nil` when `WATCHDOG_USEC` is unset or `WATCHDOG_PID`
    /// names another process. The variables stay in the environment; start children with
    /// ``SystemdEnvironment/environmentForChildren()``.
    /// - Throws: ``SocketError`` for `sd_watchdog_enabled` with EINVAL when `WATCHDOG_USEC` or
    ///   `WATCHDOG_PID` is malformed (the message quotes both).
    public static func fromEnvironment(notifier: SystemdNotifier = SystemdNotifier()) throws(SocketError) -> Watchdog? {
        // Without WATCHDOG_USEC there is nothing to ask (and libsystemd is not even loaded).
        guard getenv("WATCHDOG_USEC") != nil else { return nil }
        var usec: UInt64 = 0
        let result = csystemd_watchdog_enabled(0, &usec)
        if result < 0 {
            let value = { (name: String) in getenv(name).map { String(cString: $0) } ?? "(unset)" }
            throw SocketError(
                "sd_watchdog_enabled", errno: -result,
                subject: "WATCHDOG_USEC=\(value("WATCHDOG_USEC")) WATCHDOG_PID=\(value("WATCHDOG_PID"))")
        }
        guard result > 0, usec > 0 else { return nil }
        return Watchdog(timeoutMicroseconds: usec, notifier: notifier)
    }

    /// The ping interval in microseconds: half the timeout, as sd_watchdog_enabled(3) advises.
    public var intervalMicroseconds: UInt64 { timeoutMicroseconds / 2 }

    /// The ping interval in seconds.
    public var interval: Double { Double(intervalMicroseconds) / 1e6 }

    /// The longest poll interval (seconds) a loop calling ``pingIfDue(now:)`` should use: half the
    /// ping interval, so a ping is at most that late and always well inside the timeout.
    public var recommendedPollInterval: Double { interval / 2 }

    /// Sends `WATCHDOG=1` if no ping was attempted in the last ``intervalMicroseconds``
    /// (the first call always pings).
    ///
    /// A failed send still counts as an attempt, so a broken notify socket costs one error per
    /// interval rather than one per loop pass.
    /// - Parameter now: the current CLOCK_MONOTONIC time in µs (``MonotonicClock/microseconds()``).
    /// - Returns: whether a ping was sent now.
    /// - Throws: ``SocketError`` for `sd_notify`.
    @discardableResult
    public func pingIfDue(now: UInt64 = MonotonicClock.microseconds()) throws(SocketError) -> Bool {
        let last = lastPing.load(ordering: .acquiring)
        if last != UInt64.max && (now < last || now - last < intervalMicroseconds) { return false }
        guard lastPing.compareExchange(expected: last, desired: now, ordering: .acquiringAndReleasing).exchanged else {
            return false  // another thread pinged just now
        }
        return try notifier.watchdog()
    }

    /// Sends `WATCHDOG=1` now and restarts the interval.
    @discardableResult
    public func ping() throws(SocketError) -> Bool {
        lastPing.store(MonotonicClock.microseconds(), ordering: .releasing)
        return try notifier.watchdog()
    }
}
