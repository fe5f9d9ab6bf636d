/// The daemon-wide options one source gives (the command line or the configuration file's top level); `nil` where
/// that source is silent.
struct DaemonOverrides: Equatable, Sendable {
    /// `model`.
    var model: ModelName?
    /// `drain-timeout`, in seconds.
    var drainTimeout: Double?
    /// `daemon`. The command line gives `true` or nothing: it has no way to say "do not detach".
    var daemonize: Bool?
    /// `pidfile`.
    var pidfile: String?
    /// `user`.
    var user: String?
    /// `group`.
    var group: String?
    /// `log-level`.
    var logLevel: LogLevelName?
    /// `log-file`.
    var logFile: String?

    /// These values, with `fallback`'s wherever these are `nil`.
    func overriding(_ fallback: DaemonOverrides) -> DaemonOverrides {
        DaemonOverrides(
            model: model ?? fallback.model,
            drainTimeout: drainTimeout ?? fallback.drainTimeout,
            daemonize: daemonize ?? fallback.daemonize,
            pidfile: pidfile ?? fallback.pidfile,
            user: user ?? fallback.user,
            group: group ?? fallback.group,
            logLevel: logLevel ?? fallback.logLevel,
            logFile: logFile ?? fallback.logFile
        )
    }
}
