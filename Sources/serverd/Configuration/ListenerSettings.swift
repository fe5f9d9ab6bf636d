/// The options that apply to one listener, every one resolved: the listener's own `[[listener]]` value, else the
/// command line's, else the configuration file's top level, else the built-in default.
struct ListenerSettings: Equatable, Sendable {
    /// The default of `max-connections`.
    static let defaultMaxConnections = 1024
    /// The default of `idle-timeout`, in seconds.
    static let defaultIdleTimeout: Double = 300
    /// The default of `max-line`, in bytes.
    static let defaultMaxLine = 65536

    /// The program and its arguments that an `exec` listener runs per connection; empty for the other services.
    var exec: [String] = []
    /// The permission bits of a filesystem Unix socket serverd creates; `nil` leaves them to the umask.
    var socketMode: UInt32?
    /// Unix listeners: the peer uids served (with ``allowGIDs``); `nil` when `allow-uid` is not given.
    var allowUIDs: [UInt32]?
    /// Unix listeners: the peer gids served (with ``allowUIDs``); `nil` when `allow-gid` is not given.
    var allowGIDs: [UInt32]?
    /// Inet listeners: the source blocks served; empty serves every source not denied.
    var allow: [CIDRBlock] = []
    /// Inet listeners: the source blocks refused; deny wins over allow.
    var deny: [CIDRBlock] = []
    /// At most this many connections at once on this listener; at the limit it stops accepting.
    var maxConnections = ListenerSettings.defaultMaxConnections
    /// At most this many simultaneous connections from one IP address or one uid; `nil` is unlimited.
    var maxPerSource: Int?
    /// Seconds a stream connection may stay idle before it is closed.
    var idleTimeout = ListenerSettings.defaultIdleTimeout
    /// The longest line, in bytes before the LF, that the line services accept.
    var maxLine = ListenerSettings.defaultMaxLine
}
