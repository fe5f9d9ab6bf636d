import FamilyServer

/// The UDP ports this serverd process serves on, so that no listener answers a datagram that
/// claims to come from one of them: such a source is either serverd itself (an echo that would
/// answer its own reply for ever) or another serverd instance on the same port (an echo
/// ping-pong between two hosts). Process-wide: every UDP listener registers while it serves.
enum OwnDatagramPorts {
    private static let ports = ConditionLock<[UInt16: Int]>([:])

    /// Records that a UDP listener serves on `port`.
    static func add(_ port: UInt16) {
        ports.withLock { $0[port, default: 0] += 1 }
    }

    /// Forgets one UDP listener on `port`.
    static func remove(_ port: UInt16) {
        ports.withLock { counts in
            let left = counts[port, default: 1] - 1
            counts[port] = left > 0 ? left : nil
        }
    }

    /// Whether a UDP listener of this process serves on `port`.
    static func contains(_ port: UInt16) -> Bool {
        ports.withLock { $0[port] != nil }
    }
}
