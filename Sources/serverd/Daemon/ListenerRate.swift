import FamilyServer

/// `max-rate`: one listener's token bucket of new connections (datagrams on a datagram listener) per second.
///
/// The serve loop asks ``resumesAt(rate:now:)`` before it takes a request and counts each one it takes
/// (``count(rate:now:)``); while the bucket is empty it leaves the socket alone (clients wait in the kernel's backlog,
/// datagrams in the receive buffer) and wakes when the next token is due, without a thread or a busy loop. The rate
/// is passed in on every call from the listener's current policy, so a reload that changes it applies at once: tokens
/// saved up beyond the new burst are dropped, and 0 forgets the bucket.
final class ListenerRate: Sendable {
    private let bucket = ConditionLock<TokenBucket?>(nil)

    /// The monotonic time from which the listener may take its next request under `rate` (0: unlimited); `nil`
    /// when it may take one now.
    func resumesAt(rate: Int, now: Double) -> Double? {
        bucket.withLock { bucket in
            Self.follow(&bucket, rate: rate, now: now)
            guard let next = bucket?.nextTokenAt(now: now), next > now else { return nil }
            return next
        }
    }

    /// How many requests the listener may take at once under `rate` (0: unlimited, `nil`): the whole tokens in the
    /// bucket, so that a batch of datagrams takes no more than the bucket allows.
    func allowance(rate: Int, now: Double) -> Int? {
        bucket.withLock { bucket in
            Self.follow(&bucket, rate: rate, now: now)
            return bucket?.available(now: now)
        }
    }

    /// Counts a request the listener took under `rate`.
    func count(rate: Int, now: Double) {
        bucket.withLock { bucket in
            Self.follow(&bucket, rate: rate, now: now)
            _ = bucket?.reserve(now: now, maxWait: .infinity)
        }
    }

    /// Makes `bucket` one of `rate`: none for 0, a full one when there was none, the same one at a changed rate.
    private static func follow(_ bucket: inout TokenBucket?, rate: Int, now: Double) {
        guard rate > 0 else {
            bucket = nil
            return
        }
        if bucket == nil {
            bucket = TokenBucket(rate: rate, now: now)
        } else if bucket?.rate != Double(rate) {
            bucket?.change(rate: rate, now: now)
        }
    }
}
