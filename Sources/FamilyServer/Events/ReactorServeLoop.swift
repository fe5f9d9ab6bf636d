import Glibc

/// The serve loop of one server, run by a reactor instead of a thread of the server's own
/// (``EventModel/runServeLoop(of:pollInterval:)``): the reactor watches the server's wake-up descriptor and, while the
/// server takes requests, its socket, and on each readiness or due time takes what is queued
/// (``BaseServer/serveReadyRequests()``) and runs ``BaseServer/serviceActions()``, as
/// ``BaseServer/serveForever(pollInterval:)`` would. A connection accepted there is served by that very reactor
/// while it has time to spare (``EventReactors``), so most connections never cross to another thread.
///
/// The thread that called ``BaseServer/serveForever(pollInterval:)`` waits in ``waitUntilEnded()`` until the reactor
/// lets the server go: once a shutdown is requested, or when the reactors stop. A loop started by
/// ``BaseServer/startServing(pollInterval:ended:)`` has no thread waiting for it: ``end()`` calls its `ended` instead.
final class ReactorServeLoop: @unchecked Sendable {
    // @unchecked: everything but `ended` is used by the one reactor that runs the loop, on its thread.

    /// The server whose loop this is.
    let server: BaseServer
    /// How often ``BaseServer/serviceActions()`` runs while nothing else wakes the loop.
    let pollInterval: Double
    /// The reactor's tokens for the server's wake-up descriptor and its socket.
    var wakeupToken: UInt64 = 0
    var socketToken: UInt64 = 0
    /// Whether the reactor watches the socket now (not while the server is at capacity or paced).
    var watchesSocket = false
    /// When the loop must make a pass although nothing woke it: the next service actions, a paced server's next
    /// request, a moment while the server ``BaseServer/needsPolling``.
    var due: Double = 0
    /// When ``BaseServer/serviceActions()`` ran last.
    var lastServiceActions: Double = 0
    private let ended = ConditionLock(false)
    /// Called once the loop has ended, on the thread that ended it; `nil` when a thread waits instead.
    private let onEnd: (@Sendable () -> Void)?

    init(server: BaseServer, pollInterval: Double, onEnd: (@Sendable () -> Void)? = nil) {
        self.server = server
        self.pollInterval = pollInterval
        self.onEnd = onEnd
    }

    /// Lets the waiting ``BaseServer/serveForever(pollInterval:)`` return, or calls the loop's `onEnd`.
    func end() {
        ended.withLock(notify: .all) { $0 = true }
        onEnd?()
    }

    /// Waits until the reactor let the server go.
    func waitUntilEnded() {
        ended.wait(until: { $0 }) { _, _ in }
    }
}
