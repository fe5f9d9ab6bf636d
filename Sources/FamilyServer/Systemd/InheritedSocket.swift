import CSystemd
import Glibc

/// One socket passed by systemd (socket activation): descriptor 3 or above, with the name its
/// `LISTEN_FDNAMES` entry gives it and what the kernel says it is.
///
/// The ``socket`` owns the descriptor (close-on-exec, as ``Socket/init(adopting:)`` leaves it).
/// Build a server on it with ``makeServer(handler:model:logger:)``, or hand ``socket`` to a
/// server subclass's `init(adopting:…)` according to ``kind``.
public struct InheritedSocket: Sendable, CustomStringConvertible {
    /// What an inherited socket is for, which decides how it is served.
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// A listening stream socket (`ListenStream=` with `Accept=no`): serve it with a ``StreamServer``.
        case listener
        /// A datagram socket (`ListenDatagram=`): serve it with a ``DatagramServer``.
        case datagram
        /// A stream socket that is not listening: the one connection of an `Accept=yes` instance
        /// (systemd names it `connection`; `systemd-socket-activate --accept` leaves it `unknown`).
        /// Serve it with a ``ConnectionServer`` or ``BaseServer/serve(connection:clientAddress:)``.
        case connection

        /// `listener`, `datagram` or `connection`.
        public var description: String {
            switch self {
            case .listener: return "listener"
            case .datagram: return "datagram"
            case .connection: return "connection"
            }
        }
    }

    /// The descriptor number the socket was inherited on (3, 4, …). Unlike
    /// `socket.fileDescriptor` it stays the same after the socket is closed, for messages.
    public let fileDescriptor: Int32
    /// Its `LISTEN_FDNAMES` entry: `FileDescriptorName=`, else the socket unit's name (`foo.socket`);
    /// `unknown` when systemd gave no names, `connection` for an `Accept=yes` connection, `stored`
    /// for an fd-store descriptor stored without a name. Names need not be unique.
    public let name: String
    /// The adopted socket, owning the descriptor.
    public let socket: Socket
    /// Listener, datagram socket or connection.
    public let kind: Kind
    /// The address the socket is bound to (its `getsockname`), read at adoption.
    public let localAddress: SocketAddress

    /// The address family: `AF_INET`, `AF_INET6` or `AF_UNIX`.
    public var family: Int32 { socket.family }
    /// Stream or datagram.
    public var transport: SocketAddress.Transport { socket.transport }
    /// Whether it is a listening stream socket (SO_ACCEPTCONN).
    public var isListening: Bool { kind == .listener }
    /// Whether it is a connected stream socket: an `Accept=yes` connection.
    public var isConnection: Bool { kind == .connection }

    /// The peer of a ``Kind/connection`` socket, or `nil` (a listener or datagram socket, or a
    /// peer that is already gone).
    public var peerAddress: SocketAddress? {
        guard kind == .connection else { return nil }
        return try? socket.peerAddress()
    }

    /// `fd 3 'echo': tcp://127.0.0.1:7 (listener)`.
    public var description: String {
        "fd \(fileDescriptor) '\(name)': \(localAddress) (\(kind))"
    }

    /// Adopts `fd`, naming it `name` in errors.
    init(adopting fd: Int32, name: String) throws(SocketActivationError) {
        let socket: Socket
        do throws(SocketError) {
            socket = try Socket(adopting: fd)
        } catch {
            switch error.errno {
            case EBADF: throw .notOpen(fd: fd, name: name)
            case ENOTSOCK: throw .notASocket(fd: fd, name: name)
            case ESOCKTNOSUPPORT:
                var type: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                _ = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length)
                throw .unsupportedSocketType(fd: fd, name: name, type: type)
            default: throw .descriptorFailed(fd: fd, name: name, error)
            }
        }
        do throws(SocketError) {
            if socket.transport == .datagram {
                kind = .datagram
            } else {
                kind = try socket.intOption(level: SOL_SOCKET, name: SO_ACCEPTCONN) != 0 ? .listener : .connection
            }
            localAddress = try socket.localAddress()
        } catch {
            _ = socket.takeDescriptor()  // leave the descriptor as it was found
            throw .descriptorFailed(fd: fd, name: name, error)
        }
        self.fileDescriptor = fd
        self.name = name
        self.socket = socket
    }
}

/// The sockets systemd passed to this process (socket activation), adopted once per process.
///
/// ``adopt()`` reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` through libsystemd's
/// `sd_listen_fds_with_names`, which removes the three variables from the environment (so exec'd
/// children never see them) and sets close-on-exec on every descriptor. Each descriptor becomes
/// an ``InheritedSocket`` whose family and type are read from the kernel.
///
/// Lookups follow the addresses of SPEC section 2: ``named(_:)`` for `systemd:NAME` (a socket
/// unit gives all of its sockets one name, so a name may match several sockets) and
/// ``unclaimed(byNames:)`` for a bare `systemd`. ``connections`` finds an `Accept=yes` connection.
public struct InheritedSockets: Sendable, RandomAccessCollection, CustomStringConvertible {
    /// The sockets, in descriptor order (3, 4, …).
    public let sockets: [InheritedSocket]

    /// Wraps a list of already adopted sockets.
    public init(_ sockets: [InheritedSocket]) {
        self.sockets = sockets
    }

    /// The index of the first socket (0).
    public var startIndex: Int { sockets.startIndex }
    /// One past the index of the last socket.
    public var endIndex: Int { sockets.endIndex }
    /// The socket at `position`.
    public subscript(position: Int) -> InheritedSocket { sockets[position] }

    /// The sockets systemd passed to this process; empty when none were passed or they were
    /// meant for another process (`LISTEN_PID` is not this process's PID — not an error).
    ///
    /// Adoption happens once per process, on the first call, and its outcome is cached:
    /// **every later call returns the same sockets (or throws the same error), never an empty
    /// list** — unlike go-systemd's `Files(true)` (coreos/go-systemd#384), the cleared
    /// environment does not make a second caller believe nothing was inherited. The sockets are
    /// shared ``Socket`` objects: whoever serves one owns it, and once a server closes it, every
    /// holder sees it closed.
    ///
    /// Call it early in `main`, before starting threads: removing the variables uses `unsetenv`,
    /// which is not thread-safe against concurrent `getenv`. The cache itself is thread-safe.
    ///
    /// - Throws: ``SocketActivationError`` naming the variable or descriptor at fault: a
    ///   malformed `LISTEN_PID` or `LISTEN_FDS`, a `LISTEN_FDNAMES` with the wrong number of
    ///   names, a descriptor that is not open, not a socket or of an unsupported type. The
    ///   variables are removed from the environment in every case.
    public static func adopt() throws(SocketActivationError) -> InheritedSockets {
        try adopted.get()
    }

    private static let adopted = Result { () throws(SocketActivationError) -> InheritedSockets in
        try adoptFromEnvironment()
    }

    /// The uncached adoption behind ``adopt()``.
    static func adoptFromEnvironment() throws(SocketActivationError) -> InheritedSockets {
        let environment = ActivationEnvironment.read()
        // Without LISTEN_PID nothing was passed; as libsystemd would, drop the other two variables (and libsystemd
        // is not even loaded).
        guard getenv("LISTEN_PID") != nil else {
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
            return InheritedSockets([])
        }
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let count = csystemd_listen_fds_with_names(1, &names)
        var nameList: [String] = []
        if let names {
            var index = 0
            while let name = names[index] {
                nameList.append(String(cString: name))
                free(name)
                index += 1
            }
            free(names)
        }
        guard count >= 0 else { throw environment.diagnose(errno: -count) }
        var adopted: [InheritedSocket] = []
        do throws(SocketActivationError) {
            for index in 0..<Int(count) {
                let fd = SD_LISTEN_FDS_START + Int32(index)
                let name = index < nameList.count ? nameList[index] : "unknown"
                adopted.append(try InheritedSocket(adopting: fd, name: name))
            }
        } catch {
            for socket in adopted { _ = socket.socket.takeDescriptor() }  // leave them as found
            throw error
        }
        return InheritedSockets(adopted)
    }

    /// The sockets whose `LISTEN_FDNAMES` entry is `name` (for `systemd:NAME`), in descriptor order.
    public func named(_ name: String) -> [InheritedSocket] {
        sockets.filter { $0.name == name }
    }

    /// The sockets whose name is none of `names` (for a bare `systemd` address: every inherited
    /// socket that no `systemd:NAME` listener claims), in descriptor order.
    public func unclaimed(byNames names: some Sequence<String>) -> [InheritedSocket] {
        let claimed = Set(names)
        return sockets.filter { !claimed.contains($0.name) }
    }

    /// The distinct names, in order of first appearance.
    public var names: [String] {
        var seen = Set<String>()
        return sockets.compactMap { seen.insert($0.name).inserted ? $0.name : nil }
    }

    /// The connected stream sockets (`Accept=yes`); systemd passes exactly one to each instance.
    public var connections: [InheritedSocket] {
        sockets.filter { $0.kind == .connection }
    }

    /// One line per socket, `fd 3 'echo': tcp://127.0.0.1:7 (listener)`, joined with `, `.
    public var description: String {
        sockets.isEmpty ? "no inherited sockets" : sockets.map(\.description).joined(separator: ", ")
    }
}

/// A copy of the activation variables taken before libsystemd removes them, to explain its errors.
struct ActivationEnvironment {
    var pid: String?
    var fds: String?
    var names: String?

    static func read() -> ActivationEnvironment {
        ActivationEnvironment(pid: variable("LISTEN_PID"), fds: variable("LISTEN_FDS"), names: variable("LISTEN_FDNAMES"))
    }

    private static func variable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The names as libsystemd splits them: on every `:` byte, an empty value giving no names.
    /// (Bytes, not Characters: a `:` followed by a combining mark is one Character.)
    var nameList: [String]? {
        guard let names else { return nil }
        if names.isEmpty { return [] }
        return names.utf8.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Turns `sd_listen_fds_with_names`'s bare `-errno` into an error that names the culprit.
    func diagnose(errno code: Int32) -> SocketActivationError {
        if let pid, Self.positive(pid) == nil { return .invalidListenPID(pid) }
        if let fds, Self.positive(fds) == nil { return .invalidListenFDs(fds) }
        if let fds, let count = Self.positive(fds) {
            let list = nameList
            if code == EBADF {
                for index in 0..<count where fcntl(SD_LISTEN_FDS_START + index, F_GETFD) < 0 {
                    let name = list.flatMap { Int(index) < $0.count ? $0[Int(index)] : nil } ?? "unknown"
                    return .notOpen(fd: SD_LISTEN_FDS_START + index, name: name)
                }
            }
            if let list, let names, list.count != Int(count) {
                return .nameCountMismatch(names: list.count, descriptors: Int(count), value: names)
            }
        }
        let subject = "LISTEN_FDS=\(fds ?? "(unset)")"
        return .systemdFailed(SocketError("sd_listen_fds_with_names", errno: code, subject: subject))
    }

    private static func positive(_ text: String) -> Int32? {
        guard let value = Int32(text), value > 0 else { return nil }
        return value
    }
}
