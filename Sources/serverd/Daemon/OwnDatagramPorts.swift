import FamilyServer
import Synchronization

/// The UDP ports this serverd process serves on, so that no listener answers a datagram that
/// claims to come from one of them: such a source is either serverd itself (an echo that would
/// answer its own reply for ever) or another serverd on the same port (an echo ping-pong between
/// two hosts). Process-wide: every UDP listener registers while it serves.
///
/// A listener asks for every datagram: it keeps a ``Copy`` of the set, taken again only when a
/// listener came or went (one atomic load per datagram, no lock).
enum OwnDatagramPorts {
    private static let ports = ConditionLock<[UInt16: Int]>([:])
    /// Counts the changes of ``ports``, so that a ``Copy`` knows when it is out of date.
    private static let changes = Atomic<Int>(0)

    /// Records that a UDP listener serves on `port`.
    static func add(_ port: UInt16) {
        ports.withLock {
            $0[port, default: 0] += 1
            changes.add(1, ordering: .releasing)
        }
    }

    /// Forgets one UDP listener on `port`.
    static func remove(_ port: UInt16) {
        ports.withLock { counts in
            let left = counts[port, default: 1] - 1
            counts[port] = left > 0 ? left : nil
            changes.add(1, ordering: .releasing)
        }
    }

    /// One serving thread's copy of the ports, brought up to date when a listener came or went.
    struct Copy {
        private var ports: Set<UInt16> = []
        private var version = -1

        /// Whether a UDP listener of this process serves on `port`.
        mutating func contains(_ port: UInt16) -> Bool {
            if OwnDatagramPorts.changes.load(ordering: .acquiring) != version {
                (ports, version) = OwnDatagramPorts.ports.withLock { (Set($0.keys), OwnDatagramPorts.changes.load(ordering: .relaxed)) }
            }
            return ports.contains(port)
        }
    }
}
