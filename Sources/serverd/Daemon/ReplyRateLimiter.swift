import FamilyServer

/// At most `rate` replies per second to one source, with a burst of as many: a token bucket per
/// source, so that a spoofed source cannot turn a UDP listener into an amplifier (daytime's reply
/// is longer than any request) or a flood against a victim.
///
/// The table is bounded (``SourceBuckets``): a peer that spoofs many sources cannot grow it past
/// ``capacity``. If it is still full after a sweep, a new source gets no reply until buckets refill
/// (the guard fails closed).
final class ReplyRateLimiter: Sendable {
    private let buckets: SourceBuckets

    /// Replies per second to one source, and the burst allowed.
    var rate: Int { buckets.rate }
    /// The most sources tracked at once.
    var capacity: Int { buckets.capacity }

    /// Creates a limiter of `rate` replies per second per source (`rate` ≥ 1).
    init(rate: Int, capacity: Int = 16384) {
        buckets = SourceBuckets(rate: rate, capacity: capacity)
    }

    /// Takes one reply from `source`'s bucket; `false` when it is empty (drop the reply).
    /// - Parameters:
    ///   - source: The sender's source prefix.
    ///   - now: Monotonic seconds.
    func allows(_ source: SourceKey, now: Double = MonotonicClock.seconds()) -> Bool {
        buckets.reserve(source, now: now, maxWait: 0) == 0
    }

    /// How many sources are tracked now.
    var trackedSources: Int { buckets.trackedSources }
}
