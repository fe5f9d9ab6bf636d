import FamilyServer

/// What tells one listener from another across reloads: its address and socket origin (bound by serverd,
/// `systemd:NAME`, `systemd`, `fd:N`). An inet address with port 0 asks for a new port each time it is bound, and may
/// be declared several times: such a listener is told apart by its service too, and by which declaration of that
/// service and address it is (the first, the second, …), so that adding or removing another port-0 listener does not
/// move it to another socket.
struct ListenerIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The address and socket origin.
    var address: ListenAddress
    /// For a port-0 address: the service.
    var service: ServiceName?
    /// For a port-0 address: how many earlier declarations have the same service and address.
    var ordinal = 0

    /// The identity of a listener declared with this address and service.
    init(address: ListenAddress, service: ServiceName) {
        self.address = address
        if case .bind(let socketAddress) = address, socketAddress.port == 0 { self.service = service }
    }

    /// Whether several declarations may share the address: an inet address with port 0, where each gets its own port.
    var isEphemeral: Bool { service != nil }

    var description: String {
        guard let service else { return "\(address)" }
        return "\(service.rawValue)@\(address)" + (ordinal == 0 ? "" : " (#\(ordinal + 1))")
    }

    /// The fd name this listener's socket is passed down under at a binary upgrade (and found again by), for a socket
    /// serverd bound itself or took as `fd:N`: ``HandedOverSockets/namePrefix`` and the identity's text, encoded as
    /// systemd wants fd names (``FileDescriptorName``). `nil` for `systemd:NAME` and `systemd`, whose sockets are
    /// passed down under systemd's own names.
    var handOverName: String? {
        if case .systemd = address { return nil }
        return FileDescriptorName.encoding(description, prefix: HandedOverSockets.namePrefix)
    }
}
