/// The options that apply to one listener, every one resolved: the listener's own `[[listener]]` value, else the
/// command line's, else the configuration file's top level, else the built-in default.
struct ListenerSettings: Equatable, Sendable {
    /// The default of `max-connections`.
    static let defaultMaxConnections = 1024
    /// The default of `idle-timeout`, in seconds.
    static let defaultIdleTimeout: Double = 300
    /// The default of `max-line`, in bytes.
    static let defaultMaxLine = 65536
    /// The default of `request-timeout`, in seconds.
    static let defaultRequestTimeout: Double = 60
    /// The default of `source-prefix-v4`, in bits: one source per address.
    static let defaultSourcePrefixV4 = 32
    /// The default of `source-prefix-v6`, in bits: one source per /64, the block one IPv6 host usually owns.
    static let defaultSourcePrefixV6 = 64
    /// The default of `reply-rate-per-source`, in replies per second.
    static let defaultReplyRatePerSource = 100

    /// The program and its arguments that an `exec` listener runs per connection; empty for the other services.
    var exec: [String] = []
    /// The permission bits of a filesystem Unix socket serverd creates; `nil` leaves them to the umask.
    var socketMode: UInt32?
    /// Unix listeners: the peer uids served (with ``allowGIDs``); `nil` when `allow-uid` is not given.
    var allowUIDs: [UInt32]?
    /// Unix listeners: the peer gids served (with ``allowUIDs``); `nil` when `allow-gid` is not given.
    var allowGIDs: [UInt32]?
    /// Inet listeners: the source blocks served; `nil` serves every source not denied, an empty list no source.
    var allow: [CIDRBlock]?
    /// Inet listeners: the source blocks refused; deny wins over allow.
    var deny: [CIDRBlock] = []
    /// At most this many connections at once on this listener; at the limit it stops accepting.
    var maxConnections = ListenerSettings.defaultMaxConnections
    /// At most this many simultaneous connections from one source (see ``sourcePrefixV4``) or one uid; `nil` is
    /// unlimited.
    var maxPerSource: Int?
    /// Seconds a stream connection may stay idle before it is closed; 0 for no idle timeout.
    var idleTimeout = ListenerSettings.defaultIdleTimeout
    /// The longest line, in bytes before the LF, that the line services accept.
    var maxLine = ListenerSettings.defaultMaxLine
    /// Seconds a request (for `stamp`, a line from its first byte to its LF) may take to arrive, however it trickles;
    /// 0 for no limit. Also the age from which ``minRate`` is checked.
    var requestTimeout = ListenerSettings.defaultRequestTimeout
    /// Stream services: the least average inbound bytes per second of a connection older than ``requestTimeout``;
    /// 0 for no minimum.
    var minRate = 0
    /// The leading bits of an IPv4 peer address (an IPv4-mapped one too) that make one source for ``maxPerSource``.
    var sourcePrefixV4 = ListenerSettings.defaultSourcePrefixV4
    /// The leading bits of an IPv6 peer address that make one source for ``maxPerSource``.
    var sourcePrefixV6 = ListenerSettings.defaultSourcePrefixV6
    /// UDP listeners: at most this many replies per second to one source prefix; 0 for unlimited.
    var replyRatePerSource = ListenerSettings.defaultReplyRatePerSource
}
