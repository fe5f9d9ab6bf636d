/// The access rules of a listener, and the kind of listener each can apply to: the source address rules to inet
/// listeners (TCP, UDP), the peer credential rules to Unix ones.
enum AccessRule: String, CaseIterable, Equatable, Sendable {
    /// `allow`: source CIDR blocks served.
    case allow
    /// `deny`: source CIDR blocks refused.
    case deny
    /// `allow-uid`: peer uids served.
    case allowUID = "allow-uid"
    /// `allow-gid`: peer gids served.
    case allowGID = "allow-gid"

    /// Whether the rule applies to Unix listeners (else to inet listeners).
    var isUnixRule: Bool { self == .allowUID || self == .allowGID }

    /// Whether the rule can apply to a listener of this family.
    func applies(to family: ListenerFamily) -> Bool {
        isUnixRule == (family == .unix)
    }

    /// Which listeners the rule applies to, for messages: `inet listeners (tcp://, udp://)`.
    var applicableListeners: String {
        isUnixRule ? "Unix listeners (unix:, unixgram:)" : "inet listeners (tcp://, udp://)"
    }
}

/// The address family of a listener, as far as its access rules are concerned.
enum ListenerFamily: Equatable, Sendable {
    /// TCP or UDP over IPv4 or IPv6.
    case inet
    /// A Unix socket, filesystem or abstract.
    case unix

    /// The family for messages: `an inet socket`, `a Unix socket`.
    var description: String { self == .unix ? "a Unix socket" : "an inet socket" }
}
