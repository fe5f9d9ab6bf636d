import Glibc
import Logging

/// Logs to syslog(3) as `serverd[PID]` in the daemon facility: where `--daemon` sends logs without `--log-file`.
struct SyslogLogSink: LogSink {
    /// The ident. openlog(3) keeps the pointer it is given, so it must live as long as the process: a static string's
    /// storage does.
    private static let ident: StaticString = "serverd"

    /// Opens the connection to syslog (openlog with LOG_PID, LOG_DAEMON).
    init() {
        let ident = UnsafeRawPointer(SyslogLogSink.ident.utf8Start).assumingMemoryBound(to: CChar.self)
        openlog(ident, LOG_PID, LOG_DAEMON)
    }

    /// Sends each line as one syslog message at the level's priority.
    func write(_ record: LogRecord) {
        let priority = LogPriority.of(record.level)
        for line in record.textLines {
            // syslog itself is variadic and unavailable in Swift; vsyslog with a "%s" format never interprets the
            // line's own % signs.
            line.withCString { text in
                withVaList([text]) { vsyslog(priority, "%s", $0) }
            }
        }
    }
}
