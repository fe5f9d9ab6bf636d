/// The keys a serverd configuration file may use: every long option of the command line by the same name, plus
/// `exec` and the `[[listener]]` tables.
///
/// `config` and `check-config` are no keys: they only make sense on the command line.
enum ConfigurationKey: String, CaseIterable, Sendable {
    /// Top level: an array of `SERVICE@ADDRESS` strings; in `[[listener]]`: one string.
    case listen
    /// An array holding a program and its arguments, for `exec` listeners.
    case exec
    /// The array of `[[listener]]` tables.
    case listener
    /// `--model`.
    case model
    /// `--max-connections`.
    case maxConnections = "max-connections"
    /// `--max-per-source`.
    case maxPerSource = "max-per-source"
    /// `--idle-timeout`.
    case idleTimeout = "idle-timeout"
    /// `--max-line`.
    case maxLine = "max-line"
    /// `--request-timeout`.
    case requestTimeout = "request-timeout"
    /// `--min-rate`.
    case minRate = "min-rate"
    /// `--source-prefix-v4`.
    case sourcePrefixV4 = "source-prefix-v4"
    /// `--source-prefix-v6`.
    case sourcePrefixV6 = "source-prefix-v6"
    /// `--reply-rate-per-source`.
    case replyRatePerSource = "reply-rate-per-source"
    /// `--drain-timeout`.
    case drainTimeout = "drain-timeout"
    /// `--allow-uid`, an array.
    case allowUID = "allow-uid"
    /// `--allow-gid`, an array.
    case allowGID = "allow-gid"
    /// `--allow`, an array.
    case allow
    /// `--deny`, an array.
    case deny
    /// `--socket-mode`.
    case socketMode = "socket-mode"
    /// `--daemon`, a boolean.
    case daemon
    /// `--pidfile`.
    case pidfile
    /// `--user`.
    case user
    /// `--group`.
    case group
    /// `--log-level`.
    case logLevel = "log-level"
    /// `--log-file`.
    case logFile = "log-file"

    /// Whether a `[[listener]]` table may set this key; the others are daemon-wide, top level only.
    var isListenerKey: Bool {
        switch self {
        case .listen, .exec, .socketMode, .allowUID, .allowGID, .allow, .deny, .maxConnections, .maxPerSource,
            .idleTimeout, .maxLine, .requestTimeout, .minRate, .sourcePrefixV4, .sourcePrefixV6, .replyRatePerSource:
            return true
        case .listener, .model, .drainTimeout, .daemon, .pidfile, .user, .group, .logLevel, .logFile:
            return false
        }
    }
}
