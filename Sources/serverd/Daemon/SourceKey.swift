import FamilyServer
import Glibc

/// One source of requests, for the per-source limits: an address prefix (inet) or a uid (Unix).
///
/// One IPv6 host usually owns a whole /64, so counting per address would let it open as many connections as it
/// likes: the listener's `source-prefix-v4` and `source-prefix-v6` say how many leading bits make one source
/// (defaults /32 and /64). An IPv4-mapped peer of a dual-stack socket (`::ffff:a.b.c.d`) counts as IPv4.
enum SourceKey: Hashable, Sendable, CustomStringConvertible {
    /// The address block of an inet peer.
    case prefix(CIDRBlock)
    /// The uid of a Unix peer.
    case uid(uid_t)

    /// The source of an inet peer address; `nil` for a Unix address, whose source is its peer's uid.
    /// - Parameters:
    ///   - peer: The peer's address (a connection's client address or a datagram's sender).
    ///   - settings: The listener's settings, whose ``ListenerPolicy/sourcePrefixV4`` and
    ///     ``ListenerPolicy/sourcePrefixV6`` apply.
    init?(peer: SocketAddress, settings: ListenerPolicy) {
        guard let ip = peer.ip else { return nil }
        let bytes = (ip.mappedIPv4 ?? ip).bytes
        let bits = bytes.count == 4 ? settings.sourcePrefixV4 : settings.sourcePrefixV6
        self = .prefix(CIDRBlock(address: bytes, prefixLength: bits))
    }

    /// `10.1.2.0/24` or `uid 1000`, for the log.
    var description: String {
        switch self {
        case .prefix(let block): return block.description
        case .uid(let uid): return "uid \(uid)"
        }
    }
}
