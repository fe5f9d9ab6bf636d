/// How log lines are written (`--log-format`, `log-format = "…"`).
enum LogFormatName: String, CaseIterable, Equatable, Sendable {
    /// `TIME [PID] LEVEL: MESSAGE key=value …` in a log file, `LEVEL: MESSAGE …` on stderr.
    case text
    /// One JSON object per line (``LogRecord/jsonLine(time:pid:)``) in the log file; stderr, the journal and syslog
    /// keep their own forms.
    case json
}
