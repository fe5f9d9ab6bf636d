import FamilyServer
import Logging

/// The sockets systemd (or a launcher like it) handed over, as listeners claim them:
/// `systemd:NAME` takes every socket named NAME, `systemd` every socket no `systemd:NAME` names.
struct InheritedSocketPool: Sendable {
    private var available: [InheritedSocket]
    /// Names that `systemd:NAME` listeners will claim; a bare `systemd` leaves them alone.
    private var reserved: Set<String> = []

    /// Adopts what `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` describe (nothing when `LISTEN_PID`
    /// names another process); the variables are removed from the environment.
    /// - Throws: exit 78 naming the variable or descriptor at fault. Like every configuration
    ///   error it reports EINVAL to systemd (SPEC section 3), not the errno the library found
    ///   (EBADF for a closed descriptor, ENOTSOCK for a file, …).
    static func adopt() throws(DaemonError) -> InheritedSocketPool {
        do {
            return InheritedSocketPool(available: Array(try InheritedSockets.adopt()))
        } catch {
            throw DaemonError(.configuration, "\(error)")
        }
    }

    private init(available: [InheritedSocket]) {
        self.available = available
    }

    /// Whether nothing is left.
    var isEmpty: Bool { available.isEmpty }

    /// Descriptor and fd name of every socket left.
    var named: [(fd: Int32, name: String)] { available.map { ($0.fileDescriptor, $0.name) } }

    /// Takes the connected stream socket of an `Accept=yes` activation, if that is what was passed.
    mutating func takeConnection() -> InheritedSocket? {
        guard let index = available.firstIndex(where: \.isConnection) else { return nil }
        return available.remove(at: index)
    }

    /// Records the names `systemd:NAME` listeners of this configuration will claim.
    mutating func reserve(_ configurations: [ListenerConfiguration]) {
        for configuration in configurations where configuration.address.hasPrefix("systemd:") {
            reserved.insert(String(configuration.address.dropFirst("systemd:".count)))
        }
    }

    /// Takes the sockets a `systemd:NAME` (or, with `nil`, a bare `systemd`) listener serves.
    /// - Throws: exit 78 naming the listener when no inherited socket matches.
    mutating func claim(name: String?, for configuration: ListenerConfiguration) throws(DaemonError) -> [Socket] {
        let matches: (InheritedSocket) -> Bool = { socket in
            if let name { return socket.name == name }
            return !reserved.contains(socket.name)
        }
        let claimed = available.filter(matches)
        guard !claimed.isEmpty else {
            let left = available.isEmpty ? "none is left" : "inherited: " + available.map { "fd \($0.fileDescriptor) '\($0.name)'" }.joined(separator: ", ")
            let wanted = name.map { "named '\($0)'" } ?? "unclaimed"
            throw DaemonError(.configuration, "\(configuration.origin) '\(configuration.text)': no inherited socket \(wanted) (\(left))")
        }
        available.removeAll(where: matches)
        return claimed.map(\.socket)
    }

    /// Logs the sockets no listener claimed (they stay open but unserved).
    func warnAboutUnclaimed(logger: Logger) {
        for socket in available {
            logger.warning("inherited fd \(socket.fileDescriptor) ('\(socket.name)') is not served by any listener")
        }
    }
}
