import FamilyServer
import Synchronization

/// `max-rate`: one listener's token bucket of new connections (datagrams on a datagram listener) per second.
///
/// The serve loop asks ``resumesAt(rate:now:)`` before it takes a request and counts each one it takes
/// (``count(rate:now:)``); while the bucket is empty it leaves the socket alone (clients wait in the kernel's backlog,
/// datagrams in the receive buffer) and wakes when the next token is due, without a thread or a busy loop. The rate
/// is passed in on every call from the listener's current policy, so a reload that changes it applies at once: tokens
/// saved up beyond the new burst are dropped, and 0 forgets the bucket.
///
/// An unlimited listener (rate 0, no bucket) pays neither the lock nor the clock: `now` is read only when a bucket
/// is kept or wanted.
final class ListenerRate: Sendable {
    private let bucket = ConditionLock<TokenBucket?>(nil)
    /// Whether ``bucket`` holds one: set under its lock, read without it to skip the unlimited case.
    private let hasBucket = Atomic<Bool>(false)

    /// The monotonic time from which the listener may take its next request under `rate` (0: unlimited); `nil`
    /// when it may take one now.
    func resumesAt(rate: Int, now: @autoclosure () -> Double) -> Double? {
        guard isLimited(rate) else { return nil }
        let now = now()
        return bucket.withLock { bucket in
            follow(&bucket, rate: rate, now: now)
            guard let next = bucket?.nextTokenAt(now: now), next > now else { return nil }
            return next
        }
    }

    /// How many requests the listener may take at once under `rate` (0: unlimited, `nil`): the whole tokens in the
    /// bucket, so that a batch of datagrams takes no more than the bucket allows.
    func allowance(rate: Int, now: @autoclosure () -> Double) -> Int? {
        guard isLimited(rate) else { return nil }
        let now = now()
        return bucket.withLock { bucket in
            follow(&bucket, rate: rate, now: now)
            return bucket?.available(now: now)
        }
    }

    /// Counts `requests` (one by default) the listener took under `rate`.
    func count(_ requests: Int = 1, rate: Int, now: @autoclosure () -> Double) {
        guard isLimited(rate) else { return }
        let now = now()
        bucket.withLock { bucket in
            follow(&bucket, rate: rate, now: now)
            for _ in 0..<requests { _ = bucket?.reserve(now: now, maxWait: .infinity) }
        }
    }

    /// Whether `rate` limits, or a bucket of an earlier rate is still to be forgotten.
    private func isLimited(_ rate: Int) -> Bool {
        rate > 0 || hasBucket.load(ordering: .relaxed)
    }

    /// Makes `bucket` one of `rate`: none for 0, a full one when there was none, the same one at a changed rate.
    private func follow(_ bucket: inout TokenBucket?, rate: Int, now: Double) {
        defer { hasBucket.store(bucket != nil, ordering: .relaxed) }
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
