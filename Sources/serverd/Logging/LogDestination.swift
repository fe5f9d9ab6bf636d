/// Where serverd sends its log.
enum LogDestination: Equatable, Sendable, CustomStringConvertible {
    /// stderr, with `<N>` priority prefixes when it is the journal's stream.
    case standardError
    /// A file, appended to.
    case file(String)
    /// syslog(3), daemon facility.
    case syslog

    /// For messages: `stderr`, `/var/log/serverd.log`, `syslog`.
    var description: String {
        switch self {
        case .standardError: return "stderr"
        case .file(let path): return path
        case .syslog: return "syslog"
        }
    }
}
