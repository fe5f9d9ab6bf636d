/// The lowest severity that gets logged (`--log-level`, `log-level = "…"`).
enum LogLevelName: String, CaseIterable, Equatable, Sendable {
    /// Everything, including per-connection detail.
    case debug
    /// Normal operation.
    case info
    /// Significant events only, such as `listening on …`.
    case notice
    /// Problems serverd works around.
    case warning
    /// Failures.
    case error
}
