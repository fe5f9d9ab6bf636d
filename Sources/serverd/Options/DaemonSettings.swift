/// The options that apply to the whole daemon, resolved: the command line's value, else the configuration file's
/// top level, else the option's default from ``OptionTable``.
struct DaemonSettings: Equatable, Sendable {
    /// `model`: how stream listeners serve their connections.
    var model = ModelName.threading
    /// `workers`: the event model's reactor threads; `nil` for one per CPU.
    var workers: Int?
    /// `prefork`: the forking model's pre-forked workers per stream listener; 0 forks a child per connection.
    var prefork = 0
    /// `drain-timeout`: how long in-flight connections may take to finish on stop.
    var drainTimeout = Duration.zero
    /// `daemon`: detach once serving.
    var daemonize = false
    /// `fd-store`: hand the sockets serverd binds to systemd's fd store, and leave their files at stop.
    var fdStore = false
    /// `pidfile`: where to write the PID once ready; `nil` for none.
    var pidfile: String?
    /// `user`: the user to switch to after binding; `nil` to stay.
    var user: String?
    /// `group`: the group to switch to after binding; `nil` to stay.
    var group: String?
    /// `log-level`: the lowest level logged.
    var logLevel = LogLevelName.info
    /// `log-file`: the file logs are appended to; `nil` for stderr (or syslog under ``daemonize``).
    var logFile: String?
    /// `log-format`: text or JSON lines.
    var logFormat = LogFormatName.text

    /// The settings with these option values (``OptionTable/resolve(_:layers:)``).
    init(values: [String: OptionValue]) {
        for option in OptionTable.all {
            if let value = values[option.name] { option.apply(value, to: &self) }
        }
    }

    /// Where the log goes: the log file if set, else syslog when detached, else stderr.
    var logDestination: LogDestination {
        if let logFile { return .file(logFile) }
        return daemonize ? .syslog : .standardError
    }
}
