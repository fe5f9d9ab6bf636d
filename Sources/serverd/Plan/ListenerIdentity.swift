import FamilyServer

/// What tells one listener from another across reloads: its address and socket origin (bound by serverd,
/// `systemd:NAME`, `systemd`, `fd:N`) and, for an address with port 0 declared more than once, which of those
/// declarations it is (the first, the second, …): each asks for a port of its own.
struct ListenerIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The address and socket origin.
    var address: ListenAddress
    /// How many earlier declarations have the same port-0 address; 0 for every other address.
    var ordinal = 0

    /// Whether several declarations may share the address: an inet address with port 0, where each gets its own port.
    var isEphemeral: Bool {
        if case .bind(let socketAddress) = address, socketAddress.port == 0 { return true }
        return false
    }

    var description: String { ordinal == 0 ? "\(address)" : "\(address) (#\(ordinal + 1))" }
}
