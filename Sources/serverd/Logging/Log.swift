import Logging

/// serverd's logging set-up over swift-log.
enum Log {
    /// Makes serverd's handler the backend of every `Logger` in the process.
    ///
    /// swift-log allows one bootstrap per process, so call this once; a reload changes the level through the returned
    /// control, while a changed destination (`log-file`, `daemon`) takes effect at the next start.
    /// - Parameters:
    ///   - level: The lowest level logged.
    ///   - destination: Where lines go, usually ``LogDestination/init(for:)``.
    /// - Returns: The control of the level, for reloads.
    /// - Throws: ``DaemonError`` when the log file cannot be opened.
    static func bootstrap(level: LogLevelName, destination: LogDestination) throws(DaemonError) -> LogLevelControl {
        let sink = try makeSink(destination)
        let control = LogLevelControl(level.loggerLevel)
        LoggingSystem.bootstrap { _ in ServerdLogHandler(sink: sink, levelControl: control) }
        return control
    }

    /// Opens the sink of a destination.
    /// - Throws: ``DaemonError`` when the log file cannot be opened.
    static func makeSink(_ destination: LogDestination) throws(DaemonError) -> any LogSink {
        switch destination {
        case .standardError: return StandardErrorLogSink()
        case .file(let path): return try FileLogSink(path: path)
        case .syslog: return SyslogLogSink()
        }
    }
}
