/// Why an address text could not be used. The description names the address and what is wrong.
public struct AddressError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What exactly is wrong.
    public enum Reason: Sendable, Equatable {
        /// The text starts with no known scheme (`tcp://`, `udp://`, `unix:`, `unixgram:`, `fd:`, `systemd`).
        case unknownScheme
        /// `tcp://` or `udp://` without a host.
        case missingHost
        /// `tcp://` or `udp://` without `:PORT`.
        case missingPort
        /// The port is not a number from 0 to 65535.
        case badPort(String)
        /// The text inside `[…]` is not an IPv6 literal.
        case badIPv6(String)
        /// A host name that does not resolve; the resolver's message.
        case unresolvable(host: String, message: String)
        /// `unix:` or `unixgram:` with nothing after it.
        case emptyPath
        /// A path or abstract name longer than a `sockaddr_un` holds (107 bytes); the byte count given.
        case tooLong(bytes: Int)
        /// A NUL byte inside a path.
        case nulInPath
        /// `fd:` followed by something that is not a descriptor number.
        case badDescriptor(String)
        /// `systemd:` followed by an empty or invalid fd name.
        case badFDName(String)
    }

    /// The address text as given.
    public var address: String
    /// What is wrong with it.
    public var reason: Reason

    /// Creates an error for `address`.
    public init(_ address: String, _ reason: Reason) {
        self.address = address
        self.reason = reason
    }

    /// The message: the text that was given and why it is not an address.
    public var description: String {
        let what: String
        switch reason {
        case .unknownScheme:
            what = "unknown scheme (expected tcp://, udp://, unix:, unixgram:, fd:N, systemd or systemd:NAME)"
        case .missingHost: what = "missing host"
        case .missingPort: what = "missing port (expected HOST:PORT)"
        case .badPort(let port): what = "port '\(port)' is not a number from 0 to 65535"
        case .badIPv6(let text): what = "'\(text)' is not an IPv6 address"
        case .unresolvable(let host, let message): what = "cannot resolve host '\(host)': \(message)"
        case .emptyPath: what = "empty socket path"
        case .tooLong(let bytes): what = "path too long: \(bytes) bytes, at most 107 fit in a Unix socket address"
        case .nulInPath: what = "socket path contains a NUL byte"
        case .badDescriptor(let text): what = "'\(text)' is not a file descriptor number"
        case .badFDName(let text): what = "'\(text)' is not a valid systemd fd name"
        }
        return "address '\(address)': \(what)"
    }
}
