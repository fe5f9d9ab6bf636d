/// Everything serverd runs with: the listeners and the daemon-wide options, merged from the command line, the
/// configuration file and the built-in defaults. Built by ``load(from:)``, at start, for `--check-config` and on
/// every reload.
struct DaemonConfiguration: Equatable, Sendable {
    /// The default of `drain-timeout`, in seconds.
    static let defaultDrainTimeout: Double = 10

    /// The configured listeners: the configuration file's (its top-level `listen` first, then its `[[listener]]`
    /// tables) followed by the command line's `--listen`. Empty when none is configured: the daemon then serves the
    /// inherited sockets or the built-in default set.
    var listeners: [ListenerConfiguration]
    /// The processing model.
    var model: ModelName
    /// Seconds in-flight connections may take to finish on stop.
    var drainTimeout: Double
    /// Whether to detach (`--daemon`).
    var daemonize: Bool
    /// Where to write the PID once ready; `nil` for no pidfile.
    var pidfile: String?
    /// The user to switch to after binding; `nil` to keep the current one.
    var user: String?
    /// The group to switch to after binding; `nil` to keep the current one.
    var group: String?
    /// The lowest level logged.
    var logLevel: LogLevelName
    /// The file logs are appended to; `nil` for stderr (or syslog under ``daemonize``).
    var logFile: String?
    /// The `--config` file, which reload reads again; `nil` without one.
    var configFile: String?
    /// Whether `--check-config` asked to validate, print the listeners and exit.
    var checkConfig: Bool
}
