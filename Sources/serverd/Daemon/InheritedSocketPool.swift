import FamilyServer
import Glibc
import Logging

/// The sockets systemd (or a launcher like it) handed over, held for serverd's whole life.
///
/// A listener never takes an inherited socket away: it serves a duplicate of its descriptor (``claim(_:reserved:)``),
/// so that a reload that removes a `systemd:NAME` listener and a later one that declares it again find the socket
/// still there, and an inherited socket is never closed under systemd's feet. `systemd:NAME` takes every socket named
/// NAME; a bare `systemd` every socket that no `systemd:NAME` of the configuration names.
///
/// Sockets whose fd name begins with ``HandedOverSockets/namePrefix`` are not systemd's but serverd's own listeners,
/// passed down by the serverd before this one (a binary upgrade): they are kept apart in ``handedOver`` and taken,
/// not duplicated, by the listener of the same identity.
struct InheritedSocketPool: Sendable {
    private var sockets: [InheritedSocket]
    /// serverd's own listeners, passed down by a binary upgrade.
    let handedOver: HandedOverSockets

    /// Adopts what `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` describe (nothing when `LISTEN_PID`
    /// names another process); the variables are removed from the environment.
    /// - Throws: exit 78 naming the variable or descriptor at fault. Like every configuration
    ///   error it reports EINVAL to systemd (SPEC section 3), not the errno the library found.
    /// - Parameter lockDescriptors: The locked `PATH.lock` of each passed Unix socket, by socket descriptor
    ///   (``HandOverEnvironment``).
    static func adopt(lockDescriptors: [Int32: Int32] = [:]) throws(DaemonError) -> InheritedSocketPool {
        do {
            let all = Array(try InheritedSockets.adopt())
            let own = all.filter { $0.name.hasPrefix(HandedOverSockets.namePrefix) }
            return InheritedSocketPool(
                sockets: all.filter { !$0.name.hasPrefix(HandedOverSockets.namePrefix) },
                handedOver: HandedOverSockets(own, lockDescriptors: lockDescriptors))
        } catch {
            throw DaemonError(.configuration, "\(error)")
        }
    }

    private init(sockets: [InheritedSocket], handedOver: HandedOverSockets) {
        self.sockets = sockets
        self.handedOver = handedOver
    }

    /// Whether nothing was inherited.
    var isEmpty: Bool { sockets.isEmpty }

    /// Descriptor and fd name of every socket.
    var named: [(fd: Int32, name: String)] { sockets.map { ($0.fileDescriptor, $0.name) } }

    /// Whether a socket named `name` was inherited.
    func holds(name: String) -> Bool { sockets.contains { $0.name == name } }

    /// The inherited sockets, for messages: `inherited: fd 3 'echo', fd 4 'stamp'`, or `none was inherited`.
    var summary: String {
        sockets.isEmpty
            ? "none was inherited"
            : "inherited: " + sockets.map { "fd \($0.fileDescriptor) '\($0.name)'" }.joined(separator: ", ")
    }

    /// Takes the connected stream socket of an `Accept=yes` activation, if that is what was passed.
    mutating func takeConnection() -> InheritedSocket? {
        guard let index = sockets.firstIndex(where: \.isConnection) else { return nil }
        return sockets.remove(at: index)
    }

    /// Duplicates of the sockets a `systemd:NAME` (or, with `nil`, a bare `systemd`) listener serves.
    /// - Parameters:
    ///   - name: The fd name, or `nil` for every socket whose name is not in `reserved`.
    ///   - reserved: The names that `systemd:NAME` listeners of the configuration claim.
    /// - Throws: ``SocketError`` when a descriptor cannot be duplicated.
    /// - Returns: Each inherited descriptor (for messages) with the socket on its duplicate.
    func claim(_ name: String?, reserved: Set<String>) throws(SocketError) -> [(fd: Int32, socket: Socket)] {
        var claimed: [(fd: Int32, socket: Socket)] = []
        for socket in sockets where name.map({ socket.name == $0 }) ?? !reserved.contains(socket.name) {
            claimed.append((socket.fileDescriptor, try Self.duplicate(socket.fileDescriptor)))
        }
        return claimed
    }

    /// A socket on a duplicate of `fd` (close-on-exec), which can be closed without closing `fd`.
    static func duplicate(_ fd: Int32) throws(SocketError) -> Socket {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard copy >= 0 else { throw SocketError("dup", errno: errno, subject: "fd \(fd)") }
        do {
            return try Socket(adopting: copy)
        } catch {
            close(copy)
            throw error
        }
    }

    /// Logs the sockets no listener of the configuration serves (they stay open, unserved: their fd name is no
    /// service), with how to serve them.
    func warnAboutUnclaimed(_ listeners: [ListenerDeclaration], logger: Logger) {
        let addresses = Set(listeners.map(\.identity.address))
        if addresses.contains(.systemd(name: nil)) { return }
        for socket in sockets where !addresses.contains(.systemd(name: socket.name)) {
            logger.warning(
                "inherited fd \(socket.fileDescriptor) ('\(socket.name)') is not served: its fd name is no service; \(Self.namingHint)")
        }
    }

    /// How to have an inherited socket served, for messages about one whose fd name is no service (systemd gives an
    /// unnamed socket the name `unknown`, or the socket unit's name).
    static let namingHint =
        "name the socket after its service (FileDescriptorName=echo in the .socket unit, --fdname=echo with "
        + "systemd-socket-activate) or serve it with --listen SERVICE@systemd:NAME"
}
