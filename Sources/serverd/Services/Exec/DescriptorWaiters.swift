import Synchronization

/// The exec connections of this process that wait for descriptors (EMFILE, ENFILE) to start
/// their program, so that waiting never turns into a standoff.
///
/// Waiting helps while some connection in flight is not waiting itself: its end frees the
/// descriptors it holds. When every connection in flight is waiting (a burst of accepted exec
/// connections took the last descriptors, each holding one and needing more), nobody frees
/// anything: then the one that has waited longest gives up (its connection is closed, which frees
/// a descriptor), then the next, one at a time, until the others can start their programs. A
/// lone connection (serial model, a forked worker) gives up at once, as nothing can change.
enum DescriptorWaiters {
    private struct Queue {
        var nextTicket: UInt64 = 0
        /// Tickets of the connections waiting, longest first.
        var waiting: [UInt64] = []
    }

    private static let queue = Mutex(Queue())

    /// Joins the waiters; returns the ticket to pass to ``mayWait(_:connectionsInFlight:)`` and ``leave(_:)``.
    static func join() -> UInt64 {
        queue.withLock { queue in
            queue.nextTicket += 1
            queue.waiting.append(queue.nextTicket)
            return queue.nextTicket
        }
    }

    /// Leaves the waiters (started, or given up).
    static func leave(_ ticket: UInt64) {
        queue.withLock { $0.waiting.removeAll { $0 == ticket } }
    }

    /// Whether the waiter `ticket` should go on waiting, given how many connections this process
    /// serves now (the waiters included).
    static func mayWait(_ ticket: UInt64, connectionsInFlight: Int) -> Bool {
        queue.withLock { queue in
            connectionsInFlight > queue.waiting.count || queue.waiting.first != ticket
        }
    }
}
