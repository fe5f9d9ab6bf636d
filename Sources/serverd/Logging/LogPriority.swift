import Glibc
import Logging

/// The syslog(3) priorities of swift-log's levels, which sd-daemon(3) `<N>` prefixes and syslog share.
enum LogPriority {
    /// The priority of a level: trace and debug 7 (LOG_DEBUG), info 6, notice 5, warning 4, error 3, critical 2
    /// (LOG_CRIT).
    static func of(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return LOG_DEBUG
        case .info: return LOG_INFO
        case .notice: return LOG_NOTICE
        case .warning: return LOG_WARNING
        case .error: return LOG_ERR
        case .critical: return LOG_CRIT
        }
    }
}
