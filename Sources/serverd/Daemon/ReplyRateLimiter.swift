import FamilyServer

/// At most `rate` replies per second to one source, with a burst of as many: a token bucket per
/// source, so that a spoofed source cannot turn a UDP listener into an amplifier (daytime's reply
/// is longer than any request) or a flood against a victim.
///
/// The table is bounded: a peer that spoofs many sources cannot grow it past ``capacity``. Buckets
/// that have refilled completely (untouched for a second) are the same as no bucket and are swept
/// when the table is full, at most ten times a second; if it is still full, a new source gets no
/// reply until buckets refill (the guard fails closed).
final class ReplyRateLimiter: Sendable {
    /// Replies per second to one source, and the burst allowed.
    let rate: Int
    /// The most sources tracked at once.
    let capacity: Int
    private let table = ConditionLock(Table())

    private struct Bucket: Sendable {
        var tokens: Double
        var updated: Double
    }

    private struct Table: Sendable {
        var buckets: [SourceKey: Bucket] = [:]
        var lastSweep = -Double.infinity
    }

    /// Creates a limiter of `rate` replies per second per source (`rate` ≥ 1).
    init(rate: Int, capacity: Int = 16384) {
        precondition(rate >= 1, "a reply rate limit of \(rate) per second")
        self.rate = rate
        self.capacity = capacity
    }

    /// Takes one reply from `source`'s bucket; `false` when it is empty (drop the reply).
    /// - Parameters:
    ///   - source: The sender's source prefix.
    ///   - now: Monotonic seconds.
    func allows(_ source: SourceKey, now: Double = MonotonicClock.seconds()) -> Bool {
        let rate = Double(self.rate)
        return table.withLock { table in
            if table.buckets[source] == nil && table.buckets.count >= capacity {
                guard now - table.lastSweep >= 0.1 else { return false }
                table.lastSweep = now
                table.buckets = table.buckets.filter { now - $0.value.updated < 1 }
                guard table.buckets.count < capacity else { return false }
            }
            var bucket = table.buckets[source] ?? Bucket(tokens: rate, updated: now)
            bucket.tokens = min(rate, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            table.buckets[source] = bucket
            return allowed
        }
    }

    /// How many sources are tracked now.
    var trackedSources: Int { table.withLock { $0.buckets.count } }
}
