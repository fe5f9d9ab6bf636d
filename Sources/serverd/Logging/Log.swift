import Glibc
import Logging

/// serverd's logging set-up over swift-log.
enum Log {
    /// Makes serverd's handler the backend of every `Logger` in the process.
    ///
    /// swift-log allows one bootstrap per process, so call this once; a reload changes the level and reopens the log
    /// file through the returned control (``LogControl``).
    /// - Parameters:
    ///   - level: The lowest level logged.
    ///   - destination: Where lines go, usually ``LogDestination/init(for:)``.
    ///   - format: Text or JSON lines (`--log-format`), for a log file; stderr and syslog stay text.
    ///   - finalStandardError: The descriptor stderr will be (see ``StandardErrorLogSink/init(finalStandardError:)``).
    /// - Returns: The controls of the running log, for reloads.
    /// - Throws: ``DaemonError`` when the log file cannot be opened.
    static func bootstrap(
        level: LogLevelName, destination: LogDestination, format: LogFormatName = .text,
        finalStandardError: Int32 = STDERR_FILENO
    ) throws(DaemonError) -> LogControl {
        let control = LogLevelControl(level.loggerLevel)
        let sink: any LogSink
        var file: FileLogSink?
        switch destination {
        case .standardError: sink = StandardErrorLogSink(finalStandardError: finalStandardError)
        case .file(let path):
            file = try FileLogSink(path: path, format: format)
            sink = file!
        case .syslog: sink = SyslogLogSink()
        }
        LoggingSystem.bootstrap { _ in ServerdLogHandler(sink: sink, levelControl: control) }
        return LogControl(level: control, destination: destination, file: file)
    }
}
