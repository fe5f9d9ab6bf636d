import FamilyServer
import Glibc
import Synchronization

/// The connections being served and the exec children running, so that a drain that runs out of
/// time can end them: connections are shut down (their blocked reads return), children signalled.
final class InFlightRegistry: Sendable {
    // Created with capacity so that the dictionaries' runtime metadata exists before a forked
    // worker first inserts: instantiating it in every child cost half the forking model's time.
    private let connections = ConditionLock<[ObjectIdentifier: Socket]>(Dictionary(minimumCapacity: 16))
    private let children = ConditionLock<Set<pid_t>>(Set(minimumCapacity: 4))

    /// Records a connection for the time its handler runs.
    func serving<R>(_ connection: Socket, _ body: () throws -> R) rethrows -> R {
        let key = ObjectIdentifier(connection)
        connections.withLock { $0[key] = connection }
        defer { _ = connections.withLock { $0.removeValue(forKey: key) } }
        return try body()
    }

    /// Whether a connection is being served now.
    var isServing: Bool { connections.withLock { !$0.isEmpty } }

    /// Records an exec child until it is reaped.
    func started(child pid: pid_t) { _ = children.withLock { $0.insert(pid) } }

    /// Forgets a reaped exec child.
    func reaped(child pid: pid_t) { _ = children.withLock { $0.remove(pid) } }

    /// Shuts down every connection being served and sends SIGTERM to every exec child.
    func cutShort() {
        for connection in connections.withLock({ Array($0.values) }) {
            try? connection.shutdown(Int32(SHUT_RDWR))
        }
        for pid in children.withLock({ $0 }) {
            kill(pid, SIGTERM)
        }
    }
}
