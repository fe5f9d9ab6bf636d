/// Where serverd sends its log.
enum LogDestination: Equatable, Sendable {
    /// stderr, with `<N>` priority prefixes when it is the journal's stream.
    case standardError
    /// A file, appended to.
    case file(String)
    /// syslog(3), daemon facility.
    case syslog

    /// The destination a configuration asks for: its `log-file` if set, else syslog when it detaches (`--daemon`),
    /// else stderr.
    init(for configuration: DaemonConfiguration) {
        if let path = configuration.logFile {
            self = .file(path)
        } else if configuration.daemonize {
            self = .syslog
        } else {
            self = .standardError
        }
    }
}
