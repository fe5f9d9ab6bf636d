import Logging

/// Where serverd's log lines go: stderr, a log file or syslog.
protocol LogSink: Sendable {
    /// Writes one log event.
    /// - Parameters:
    ///   - level: The event's level.
    ///   - lines: The event's text split into lines (at least one, none containing a line feed); each sink prefixes
    ///     every line, so that no line can start with the `serverd: ` reserved for the final fatal message.
    func write(level: Logger.Level, lines: [String])
}
