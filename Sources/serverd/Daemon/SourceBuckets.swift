import FamilyServer

/// One ``TokenBucket`` per source (``SourceKey``: an address prefix or a uid), in a bounded table: the state of the
/// per-source rate limits (`reply-rate-per-source`, `max-rate-per-source`).
///
/// A peer that spoofs or owns many sources cannot grow the table past ``capacity``: buckets that have refilled
/// completely are the same as no bucket and are swept when the table is full, at most ten times a second. A source
/// that finds the table still full is untracked: the caller decides whether that fails closed or open. Every call
/// costs one lock and O(1) work, except a sweep, which is O(capacity) at most ten times a second.
final class SourceBuckets: Sendable {
    /// Tokens per second for one source, and its burst.
    let rate: Int
    /// The most sources tracked at once.
    let capacity: Int
    private let table = ConditionLock(Table())

    private struct Table: Sendable {
        var buckets: [SourceKey: TokenBucket] = [:]
        var lastSweep = -Double.infinity
    }

    /// Creates the table of `rate` tokens per second for each source (`rate` ≥ 1).
    init(rate: Int, capacity: Int = 16384) {
        precondition(rate >= 1, "a rate limit of \(rate) per second")
        self.rate = rate
        self.capacity = capacity
    }

    /// Takes the next token of `source`'s bucket, even one not there yet, unless it is more than `maxWait`
    /// seconds away (``TokenBucket/reserve(now:maxWait:)``).
    /// - Returns: the seconds to wait for it (0: at once); `nil` when it is too far away (nothing taken);
    ///   `.infinity` when the table is full and `source` is untracked (nothing taken).
    func reserve(_ source: SourceKey, now: Double, maxWait: Double) -> Double? {
        table.withLock { table in
            if table.buckets[source] == nil && table.buckets.count >= capacity {
                guard now - table.lastSweep >= 0.1 else { return .infinity }
                table.lastSweep = now
                table.buckets = table.buckets.filter { !$0.value.isFull(at: now) }
                guard table.buckets.count < capacity else { return .infinity }
            }
            var bucket = table.buckets[source] ?? TokenBucket(rate: rate, now: now)
            let wait = bucket.reserve(now: now, maxWait: maxWait)
            table.buckets[source] = bucket
            return wait
        }
    }

    /// How many sources are tracked now.
    var trackedSources: Int { table.withLock { $0.buckets.count } }
}
