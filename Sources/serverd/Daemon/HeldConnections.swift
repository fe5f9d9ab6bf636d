import FamilyServer

/// Connections accepted and admitted but held unserved until their source's next token is due
/// (`max-rate-per-source`, ``Admission/pace(connection:from:policy:canHold:)``): a bounded queue, no thread. The
/// serve loop serves each once it is due (``ServiceStreamServer/serviceActions()``) and passes by in time
/// (``BaseServer/serviceActionsDueAt``).
///
/// Bounded three ways, so that no source can hold the others out: at most ``capacity`` connections in all (each
/// holds a descriptor), at most ``Admission/mostHeldPerSource`` of one source, none longer than
/// ``Admission/longestHold``.
final class HeldConnections: Sendable {
    /// The most connections held at once per listener.
    static let capacity = 128

    /// One held connection and when its turn comes (monotonic seconds).
    struct Held: Sendable {
        let request: Request
        let client: SocketAddress
        let due: Double
    }

    private let queue = ConditionLock<[Held]>([])

    /// Whether one more connection may be held.
    var hasRoom: Bool { queue.withLock { $0.count < Self.capacity } }

    /// How many connections are held now.
    var count: Int { queue.withLock { $0.count } }

    /// The earliest turn of a held connection; `nil` when none is held.
    var nextDue: Double? { queue.withLock { $0.lazy.map(\.due).min() } }

    /// Holds `request` until `due`.
    func hold(_ request: Request, client: SocketAddress, due: Double) {
        queue.withLock { $0.append(Held(request: request, client: client, due: due)) }
    }

    /// Takes the connection whose turn came first, if one is due by `now`.
    func takeDue(now: Double) -> Held? {
        queue.withLock { queue in
            guard let index = queue.indices.min(by: { queue[$0].due < queue[$1].due }), queue[index].due <= now else {
                return nil
            }
            return queue.remove(at: index)
        }
    }

    /// Takes every held connection (the listener closes).
    func takeAll() -> [Held] {
        queue.withLock { queue in
            defer { queue = [] }
            return queue
        }
    }
}
