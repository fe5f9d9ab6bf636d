import Glibc

/// The environment variables through which systemd talks to the daemon itself — `LISTEN_*`,
/// `NOTIFY_SOCKET` and `WATCHDOG_*` — and the environment to give child processes without them.
///
/// A program the daemon executes must not believe the daemon's sockets, notify socket or
/// watchdog are its own (its notifications would be refused, or worse, accepted under
/// `NotifyAccess=all`). ``InheritedSockets/adopt()`` already removes `LISTEN_*`; `NOTIFY_SOCKET`
/// and `WATCHDOG_*` must stay in the daemon's own environment for ``SystemdNotifier`` and
/// ``Watchdog``, so filter them per child instead: pass ``environmentForChildren()`` to `execve`.
public enum SystemdEnvironment {
    /// Whether `name` is a variable that only the daemon itself may see: `LISTEN_` followed by
    /// anything, `NOTIFY_SOCKET`, or `WATCHDOG_` followed by anything.
    public static func isDaemonOnly(_ name: some StringProtocol) -> Bool {
        name == "NOTIFY_SOCKET" || name.hasPrefix("LISTEN_") || name.hasPrefix("WATCHDOG_")
    }

    /// `environment` (`NAME=value` strings, as `execve` takes them) without the daemon-only
    /// variables; the order of the rest is kept.
    public static func filtered(_ environment: [String]) -> [String] {
        environment.filter { entry in
            let name = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return !isDaemonOnly(name)
        }
    }

    /// The current process environment (`environ`) without the daemon-only variables: the
    /// `envp` for a child's `execve`, to which the caller adds the child's own variables.
    public static func environmentForChildren() -> [String] {
        filtered(currentEnvironment())
    }

    /// The current process environment as `NAME=value` strings.
    public static func currentEnvironment() -> [String] {
        var entries: [String] = []
        let base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        guard var entry = base else { return entries }
        while let pointer = entry.pointee {
            entries.append(String(cString: pointer))
            entry += 1
        }
        return entries
    }

    /// Removes the daemon-only variables from this process's environment with `unsetenv`.
    ///
    /// For a process that will not notify systemd any more, or for a forked child just before
    /// `execvp` (prefer passing ``environmentForChildren()`` to `execve`, computed before the
    /// fork: `unsetenv` allocates and is not async-signal-safe). Not thread-safe.
    public static func removeDaemonOnlyVariables() {
        for entry in currentEnvironment() {
            let name = String(entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            if isDaemonOnly(name) { unsetenv(name) }
        }
    }
}
