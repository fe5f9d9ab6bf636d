import Synchronization

/// The counts one listener keeps for the daemon's status block (SIGUSR1) and its `STATUS=` line: plain atomics,
/// kept by the serving process, cheap to bump from any thread and to read from the control loop.
///
/// These are the daemon's own numbers; what any FamilyServer server knows (requests, active, bytes) goes to
/// swift-metrics too (``ServerMetrics``, with the address as dimension), for a program that bootstraps a backend.
/// The daemon keeps its counts beside those reports rather than reading them back from a backend of its own, so
/// that the status block needs no metrics backend and costs one atomic add per event.
///
/// Under the forking model a built-in stream connection is served in a worker process: the connection and its end
/// are counted here (the parent accepts and reaps), but its bytes are not (they pass through the worker, whose
/// connection line reports them). Bytes of exec connections never pass through serverd and are not counted.
final class ListenerCounters: Sendable {
    /// Why a connection (or datagram) was refused: the one place a refusal is counted is ``refused(_:)``.
    enum Refusal: Sendable {
        /// The access rules.
        case denied
        /// A connection limit (`max-per-source`).
        case limit
        /// A rate limit (`max-rate-per-source`): counted with the limit hits.
        case rate
    }

    private let connections = Atomic<Int>(0)
    private let denials = Atomic<Int>(0)
    private let limitHits = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    private let sent = Atomic<Int>(0)
    private let datagrams = Atomic<Int>(0)
    private let replies = Atomic<Int>(0)
    private let drops = Atomic<Int>(0)

    /// A connection was admitted.
    func admitted() { connections.add(1, ordering: .relaxed) }

    /// A connection or datagram was refused.
    func refused(_ reason: Refusal) {
        switch reason {
        case .denied: denials.add(1, ordering: .relaxed)
        case .limit, .rate: limitHits.add(1, ordering: .relaxed)
        }
    }

    /// A connection served in this process passed these bytes.
    func transferred(received bytesIn: Int, sent bytesOut: Int) {
        if bytesIn > 0 { received.add(bytesIn, ordering: .relaxed) }
        if bytesOut > 0 { sent.add(bytesOut, ordering: .relaxed) }
    }

    /// A datagram of `size` bytes arrived.
    func datagramReceived(size: Int) {
        datagrams.add(1, ordering: .relaxed)
        received.add(size, ordering: .relaxed)
    }

    /// A datagram was dropped unanswered by a rule (access, reply rate, reflection guard).
    func datagramDropped() { drops.add(1, ordering: .relaxed) }

    /// A reply of `size` bytes went out.
    func replySent(size: Int) {
        replies.add(1, ordering: .relaxed)
        sent.add(size, ordering: .relaxed)
    }

    /// The counts now.
    var snapshot: Snapshot {
        Snapshot(
            connections: connections.load(ordering: .relaxed), denials: denials.load(ordering: .relaxed),
            limitHits: limitHits.load(ordering: .relaxed), bytesIn: received.load(ordering: .relaxed),
            bytesOut: sent.load(ordering: .relaxed), datagrams: datagrams.load(ordering: .relaxed),
            replies: replies.load(ordering: .relaxed), drops: drops.load(ordering: .relaxed))
    }

    /// The counts at one moment.
    struct Snapshot: Sendable {
        /// Connections admitted since the listener started.
        var connections = 0
        /// Connections (and datagrams) refused by the access rules.
        var denials = 0
        /// Connections refused by a limit (`max-per-source`, `max-rate-per-source`); datagrams dropped by the rate.
        var limitHits = 0
        /// Bytes received (stream connections served in this process, datagrams).
        var bytesIn = 0
        /// Bytes sent.
        var bytesOut = 0
        /// Datagrams received.
        var datagrams = 0
        /// Datagram replies sent.
        var replies = 0
        /// Datagrams dropped by a rule.
        var drops = 0
    }
}
