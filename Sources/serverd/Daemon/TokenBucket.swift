/// A token bucket (xinetd's `cps`, the rate limits of serverd): `rate` tokens a second, refilled continuously, at
/// most `rate` of them saved up, so a burst of one second's worth passes at once and the rest follows at the rate.
///
/// Pure arithmetic on a clock value the caller passes in (monotonic seconds): no clock of its own, no lock, no
/// sleeping. A reservation may take a token that is not there yet (the balance goes negative); the bucket then
/// says how long that request has to wait for it.
struct TokenBucket: Sendable, Equatable {
    /// Tokens per second, and the most saved up (the burst).
    private(set) var rate: Double
    /// The balance at ``updated``; below 1 no token is there, below 0 tokens are promised to waiting requests.
    private(set) var tokens: Double
    /// The clock value of the last refill.
    private(set) var updated: Double
    /// A balance this close to 1 holds a whole token: the refill at ``nextTokenAt(now:)`` must count as one despite
    /// rounding, or a loop waiting for it would wake a moment too early, again and again.
    private static let whole = 1 - 1e-9

    /// A full bucket of `rate` tokens a second (`rate` > 0) at clock value `now`.
    init(rate: Int, now: Double) {
        precondition(rate > 0, "a rate of \(rate) per second")
        self.rate = Double(rate)
        tokens = Double(rate)
        updated = now
    }

    /// Adds the tokens that accrued since the last refill, up to the burst.
    private mutating func refill(_ now: Double) {
        if now > updated {
            tokens = min(rate, tokens + (now - updated) * rate)
            updated = now
        }
    }

    /// Takes a token if one is there now; `false` (nothing taken) when the bucket is empty.
    mutating func take(now: Double) -> Bool {
        refill(now)
        guard tokens >= Self.whole else { return false }
        tokens -= 1
        return true
    }

    /// Takes the next token, even one not there yet, unless waiting for it would take longer than `maxWait`.
    /// - Returns: the seconds from `now` until the token is there (0: at once), or `nil` (nothing taken) when that
    ///   would be more than `maxWait`.
    mutating func reserve(now: Double, maxWait: Double) -> Double? {
        refill(now)
        let wait = tokens >= Self.whole ? 0 : (1 - tokens) / rate
        guard wait <= maxWait else { return nil }
        tokens -= 1
        return wait
    }

    /// How many whole tokens are there at `now`: requests that may pass at once.
    func available(now: Double) -> Int {
        var bucket = self
        bucket.refill(now)
        return bucket.tokens >= Self.whole ? Int((bucket.tokens + (1 - Self.whole)).rounded(.down)) : 0
    }

    /// The clock value from which a token is there, `now` itself when one is.
    func nextTokenAt(now: Double) -> Double {
        var bucket = self
        bucket.refill(now)
        return bucket.tokens >= Self.whole ? now : now + (1 - bucket.tokens) / rate
    }

    /// Whether the bucket has refilled completely by `now`: then it is the same as a fresh one and may be forgotten.
    func isFull(at now: Double) -> Bool {
        tokens + max(0, now - updated) * rate >= rate
    }

    /// Changes the rate (a reload): the burst follows it at once, tokens saved up beyond it are dropped.
    mutating func change(rate newRate: Int, now: Double) {
        precondition(newRate > 0, "a rate of \(newRate) per second")
        refill(now)
        rate = Double(newRate)
        tokens = min(tokens, rate)
    }
}
