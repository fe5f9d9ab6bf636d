/// Where serverd's log events go: stderr (perhaps the journal), a log file or syslog.
protocol LogSink: Sendable {
    /// Writes one log event. Each sink renders it in its own form (``LogRecord/textLines`` or
    /// ``LogRecord/jsonLine(time:pid:)``) and prefixes every line, so that no line can start with the `serverd: `
    /// reserved for the final fatal message.
    func write(_ record: LogRecord)
}
