/// The deadlines of one reactor's connections: a binary min-heap of (due time, connection token).
///
/// Cancelling or moving a deadline leaves its old entry in place; the reactor checks each entry it takes against the
/// connection's current deadline and drops the stale ones. A connection keeps at most one entry that is not stale
/// (see ``EventConnection``), so the heap stays near one entry per connection with a deadline.
struct EventDeadlines {
    private var entries: [(due: Double, token: UInt64)] = []

    /// The earliest due time, if any.
    var earliest: Double? { entries.first?.due }

    /// How many entries, stale ones included.
    var count: Int { entries.count }

    /// Adds a deadline.
    mutating func insert(due: Double, token: UInt64) {
        entries.append((due, token))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].due < entries[parent].due else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: Double) -> (due: Double, token: UInt64)? {
        guard let first = entries.first, first.due <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < entries.count && entries[left].due < entries[smallest].due { smallest = left }
                if right < entries.count && entries[right].due < entries[smallest].due { smallest = right }
                if smallest == parent { break }
                entries.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }

    /// Forgets every entry.
    mutating func removeAll() {
        entries.removeAll()
    }
}
