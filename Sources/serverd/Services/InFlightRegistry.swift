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

    /// Connections being served in this process, over every listener (``DescriptorWaiters``
    /// needs them). A forked worker starts from the daemon's count at the fork: 0, as the daemon
    /// serves stream connections itself only under the threading and serial models (after a
    /// reload that changed the model, at worst a worker waits ``ExecChild/descriptorPatience``
    /// in vain).
    private static let servingInProcess = Atomic<Int>(0)

    /// Records a connection for the time its handler runs.
    func serving<R>(_ connection: Socket, _ body: () throws -> R) rethrows -> R {
        let key = ObjectIdentifier(connection)
        connections.withLock { $0[key] = connection }
        Self.servingInProcess.add(1, ordering: .relaxed)
        defer {
            Self.servingInProcess.subtract(1, ordering: .relaxed)
            _ = connections.withLock { $0.removeValue(forKey: key) }
        }
        return try body()
    }

    /// Whether a connection is being served now.
    var isServing: Bool { connections.withLock { !$0.isEmpty } }

    /// How many connections this process serves now, of every listener.
    var connectionsInProcess: Int { Self.servingInProcess.load(ordering: .relaxed) }

    /// Shuts down every connection being served (exec children are ended with their groups).
    func cutShort() {
        for connection in connections.withLock({ Array($0.values) }) {
            try? connection.shutdown(Int32(SHUT_RDWR))
        }
    }
}
