/// Everything that decides how one listener treats a connection or a datagram: the service and every per-listener
/// option, resolved (the listener's own `[[listener]]` value, else the command line's, else the configuration file's
/// top level, else the option's default from ``OptionTable``).
///
/// A policy is a plain value. A running listener holds its current one and hands a copy to each new connection, so
/// that a reload that changes it applies to new connections while open ones finish under the old.
struct ListenerPolicy: Equatable, Sendable {
    /// The service to run.
    var service: ServiceName
    /// `exec`: the program and its arguments that an `exec` listener runs per connection; empty for other services.
    var exec: [String] = []
    /// `wait`: an `exec` listener in inetd's wait mode hands the socket itself to one run of the program at a time.
    var waitMode = false
    /// `resolve`: an `exec` listener looks its TCP clients' names up for `TCPREMOTEHOST`.
    var resolve = false
    /// `wait-start-limit`: more starts than this within ``WaitModeRunner/startWindow`` pause a wait-mode listener.
    var waitStartLimit = 10
    /// `user`, `group`, `chroot`, `chdir`, `umask`, `env`, `rlimit-*` (`[[listener]]` keys): how its exec children run.
    var execIdentity = ExecIdentity()
    /// `socket-mode`: the permission bits of a filesystem Unix socket serverd creates; `nil` leaves them to the umask.
    var socketMode: UInt32?
    /// `allow-uid`: Unix listeners serve only these peer uids (or the gids of ``allowGIDs``); `nil` when not given.
    var allowUIDs: [UInt32]?
    /// `allow-gid`: Unix listeners serve only these peer gids (or the uids of ``allowUIDs``); `nil` when not given.
    var allowGIDs: [UInt32]?
    /// `allow`: inet listeners serve only sources in these blocks; `nil` serves every source not denied.
    var allow: [CIDRBlock]?
    /// `deny`: inet listeners never serve sources in these blocks; deny wins over allow.
    var deny: [CIDRBlock] = []
    /// `max-connections`: at most this many connections at once; at the limit the listener stops accepting.
    var maxConnections = 0
    /// `max-per-source`: at most this many simultaneous connections from one source or one uid; `nil` is unlimited.
    var maxPerSource: Int?
    /// `max-rate`: at most this many new connections (datagrams on a datagram listener) per second, with a burst of
    /// as many; past it the listener takes nothing until the next token is due (clients wait in the backlog,
    /// datagrams in the receive buffer). 0 for unlimited.
    var maxRate = 0
    /// `max-rate-per-source`: at most this many new connections (datagrams) per second from one source or one uid,
    /// with a burst of as many; a connection past it is held unserved until its source's token is due (or refused
    /// when the wait would be too long), a datagram past it is dropped. 0 for unlimited.
    var maxRatePerSource = 0
    /// `idle-timeout`: a stream connection idle this long is closed; zero for no idle timeout.
    var idleTimeout = Duration.zero
    /// `max-line`: the longest line, in bytes before the LF, that the line services accept.
    var maxLine = 0
    /// `request-timeout`: the longest a request (for `stamp`, a line from its first byte to its LF) may take to
    /// arrive, however it trickles; zero for no limit. Also the age from which ``minRate`` is checked.
    var requestTimeout = Duration.zero
    /// `min-rate`: the least average inbound bytes per second of a stream connection older than
    /// ``requestTimeout``; 0 for no minimum.
    var minRate = 0
    /// `source-prefix-v4`: the leading bits of an IPv4 peer address that make one source for ``maxPerSource`` and ``maxRatePerSource``.
    var sourcePrefixV4 = 32
    /// `source-prefix-v6`: the leading bits of an IPv6 peer address that make one source for ``maxPerSource`` and ``maxRatePerSource``.
    var sourcePrefixV6 = 128
    /// `reply-rate-per-source`: UDP listeners send at most this many replies per second to one source; 0 for
    /// unlimited.
    var replyRatePerSource = 0
    /// `log-connections`: log one info line per finished connection (``ConnectionRecord``).
    var logConnections = true

    /// The policy of a listener of `service` with these option values (``OptionTable/resolve(_:layers:)``).
    init(service: ServiceName, values: [String: OptionValue]) {
        self.service = service
        for option in OptionTable.all {
            if let value = values[option.name] { option.apply(value, to: &self) }
        }
    }
}

extension Duration {
    /// The duration in seconds, fractions included: what the socket timeouts of the library take.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
