/// Where a server gets its socket: an address to bind, a descriptor already open, or a socket
/// inherited from systemd.
///
/// The textual forms are those of SPEC section 2: every ``SocketAddress`` form, `fd:N`,
/// `systemd:NAME` (the inherited sockets whose `LISTEN_FDNAMES` entry is NAME) and `systemd`
/// (every inherited socket not claimed by name).
public enum ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// Create a socket and bind it to this address.
    case bind(SocketAddress)
    /// Adopt the already-open socket on this descriptor.
    case descriptor(Int32)
    /// Adopt inherited sockets: those named NAME, or, with `nil`, every one not claimed by name.
    case systemd(name: String?)

    /// Parses one of the forms above.
    /// - Throws: ``AddressError`` naming the text and what is wrong with it.
    public init(parsing text: String) throws(AddressError) {
        if let number = text.dropPrefix("fd:") {
            guard let fd = Int32(number), fd >= 0, number.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                throw AddressError(text, .badDescriptor(number))
            }
            self = .descriptor(fd)
        } else if text == "systemd" {
            self = .systemd(name: nil)
        } else if let name = text.dropPrefix("systemd:") {
            // systemd's own rule for fd names: ASCII, no control characters, no ':', at most 255 bytes.
            guard !name.isEmpty, name.utf8.count <= 255,
                  name.utf8.allSatisfy({ $0 > 31 && $0 < 127 && $0 != UInt8(ascii: ":") })
            else { throw AddressError(text, .badFDName(name)) }
            self = .systemd(name: name)
        } else {
            self = .bind(try SocketAddress(parsing: text))
        }
    }

    /// The textual form, as ``init(parsing:)`` reads it.
    public var description: String {
        switch self {
        case .bind(let address): return address.description
        case .descriptor(let fd): return "fd:\(fd)"
        case .systemd(nil): return "systemd"
        case .systemd(let name?): return "systemd:\(name)"
        }
    }
}
