import FamilyServer
import Glibc
import Synchronization

/// The connections being served, so that a drain that runs out of time can end them (their
/// blocked reads return), and the process groups of exec children (``ExecProcessGroups``), which
/// the daemon ends when it stops.
final class InFlightRegistry: Sendable {
    // Created with capacity so that the dictionary's runtime metadata exists before a forked
    // worker first inserts: instantiating it in every child cost half the forking model's time.
    private let connections = ConditionLock<[ObjectIdentifier: Socket]>(Dictionary(minimumCapacity: 16))

    /// The exec children's process groups. Reading it here creates the shared table in the
    /// daemon when its listeners are made, before any worker is forked.
    let groups = ExecProcessGroups.shared

    /// Connections being served in this process, over every listener, exec children's included
    /// (``DescriptorWaiters`` needs them; only the daemon itself starts exec children).
    private static let servingInProcess = Atomic<Int>(0)
    private let cut = Atomic<Bool>(false)

    /// Records a connection for the time its handler runs.
    func serving<R>(_ connection: Socket, _ body: () throws -> R) rethrows -> R {
        begin(connection)
        defer { end(connection) }
        return try body()
    }

    /// Records a connection as served from now on (an exec child's, until the child is reaped).
    func begin(_ connection: Socket) {
        connections.withLock { $0[ObjectIdentifier(connection)] = connection }
        Self.servingInProcess.add(1, ordering: .relaxed)
    }

    /// The connection recorded by ``begin(_:)`` is no longer served.
    func end(_ connection: Socket) {
        Self.servingInProcess.subtract(1, ordering: .relaxed)
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    /// Whether a connection is being served now.
    var isServing: Bool { connections.withLock { !$0.isEmpty } }

    /// How many connections this process serves now, of every listener.
    var connectionsInProcess: Int { Self.servingInProcess.load(ordering: .relaxed) }

    /// Whether ``cutShort()`` ended the connections: a connection that ends after it was cut by the stop.
    var wasCutShort: Bool { cut.load(ordering: .relaxed) }

    /// Shuts down every connection being served (exec children are ended with their groups).
    func cutShort() {
        cut.store(true, ordering: .relaxed)
        for connection in connections.withLock({ Array($0.values) }) {
            try? connection.shutdown(Int32(SHUT_RDWR))
        }
    }
}
