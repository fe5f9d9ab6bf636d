import FamilyServer
import XCTest

@testable import serverd

/// The token buckets of `max-rate` and `max-rate-per-source` (issue 15), on clock values the tests choose: no
/// sleeping, no clock.
final class TokenBucketTests: XCTestCase {
    /// The source key of an address, a /32 or /64 as the defaults make it.
    private func key(_ text: String) -> SourceKey {
        SourceKey(
            peer: SocketAddress(.stream, .inet(IPAddress(numeric: text)!, port: 40000)),
            settings: ListenerPolicy(service: .echo, values: OptionTable.resolve(.listener, layers: [])))!
    }

    func testABurstOfOneSecondsWorthThenTheRate() {
        var bucket = TokenBucket(rate: 5, now: 100)
        XCTAssertEqual((0..<20).filter { _ in bucket.take(now: 100) }.count, 5, "a burst of 5")
        XCTAssertFalse(bucket.take(now: 100.1), "half a token")
        XCTAssertTrue(bucket.take(now: 100.2), "one token per 1/5 s, refilled continuously")
        XCTAssertFalse(bucket.take(now: 100.2))
        XCTAssertEqual((0..<20).filter { _ in bucket.take(now: 200) }.count, 5, "never more than the burst saved up")
    }

    /// What a batch of datagrams may take at once: the whole tokens there, never a promised one.
    func testAvailableCountsTheWholeTokensThere() {
        var bucket = TokenBucket(rate: 4, now: 10)
        XCTAssertEqual(bucket.available(now: 10), 4)
        XCTAssertTrue(bucket.take(now: 10))
        XCTAssertEqual(bucket.available(now: 10), 3)
        for _ in 0..<3 { XCTAssertTrue(bucket.take(now: 10)) }
        XCTAssertEqual(bucket.available(now: 10), 0)
        XCTAssertEqual(bucket.available(now: 10.2), 0, "four fifths of a token")
        XCTAssertEqual(bucket.available(now: 10.25), 1, "a whole one, despite rounding")
        XCTAssertEqual(bucket.available(now: 99), 4, "never more than the burst")
        XCTAssertNotNil(bucket.reserve(now: 10, maxWait: .infinity))
        XCTAssertEqual(bucket.available(now: 10.25), 0, "a token promised to a waiting request is not there")
    }

    func testListenerRateAllowsAsManyAsTheBucketHoldsAndNoLimitAtZero() {
        let rate = ListenerRate()
        XCTAssertNil(rate.allowance(rate: 0, now: 5), "unlimited")
        XCTAssertEqual(rate.allowance(rate: 3, now: 5), 3)
        rate.count(rate: 3, now: 5)
        rate.count(rate: 3, now: 5)
        XCTAssertEqual(rate.allowance(rate: 3, now: 5), 1)
        rate.count(rate: 3, now: 5)
        XCTAssertEqual(rate.allowance(rate: 3, now: 5), 0)
        XCTAssertNotNil(rate.resumesAt(rate: 3, now: 5), "and the listener waits for the next token")
    }

    func testNextTokenIsDueAtTheRate() {
        var bucket = TokenBucket(rate: 4, now: 10)
        XCTAssertEqual(bucket.nextTokenAt(now: 10), 10, "a token is there")
        for _ in 0..<4 { XCTAssertTrue(bucket.take(now: 10)) }
        XCTAssertEqual(bucket.nextTokenAt(now: 10), 10.25, accuracy: 1e-9)
        XCTAssertEqual(bucket.nextTokenAt(now: 10.1), 10.25, accuracy: 1e-9)
        let due = bucket.nextTokenAt(now: 10.1)
        XCTAssertTrue(bucket.take(now: due), "the token is there at the time the bucket gave, rounding or not")
    }

    func testReservationsWaitInTurnUpToTheBound() {
        var bucket = TokenBucket(rate: 2, now: 0)
        XCTAssertEqual(bucket.reserve(now: 0, maxWait: 1), 0)
        XCTAssertEqual(bucket.reserve(now: 0, maxWait: 1), 0)
        XCTAssertEqual(bucket.reserve(now: 0, maxWait: 1), 0.5, "the next token in half a second")
        XCTAssertEqual(bucket.reserve(now: 0, maxWait: 1), 1.0, "and the one after it")
        XCTAssertNil(bucket.reserve(now: 0, maxWait: 1), "1.5 s away is past the bound")
        XCTAssertFalse(bucket.take(now: 0.9), "promised tokens are not handed out again")
        XCTAssertTrue(bucket.take(now: 1.5))
    }

    func testARateChangeAppliesAtOnce() {
        var bucket = TokenBucket(rate: 100, now: 0)
        bucket.change(rate: 2, now: 0)
        XCTAssertEqual((0..<10).filter { _ in bucket.take(now: 0) }.count, 2, "the saved-up tokens shrink to the new burst")
        bucket.change(rate: 10, now: 0)
        XCTAssertEqual(bucket.nextTokenAt(now: 0), 0.1, accuracy: 1e-9, "the new rate refills")
    }

    func testAFullBucketIsForgettable() {
        var bucket = TokenBucket(rate: 2, now: 0)
        XCTAssertTrue(bucket.isFull(at: 0))
        _ = bucket.reserve(now: 0, maxWait: 10)
        _ = bucket.reserve(now: 0, maxWait: 10)
        _ = bucket.reserve(now: 0, maxWait: 10)
        XCTAssertFalse(bucket.isFull(at: 1), "one token owed, one back")
        XCTAssertTrue(bucket.isFull(at: 1.5))
    }

    func testSourcesHaveBucketsOfTheirOwn() {
        let buckets = SourceBuckets(rate: 1)
        XCTAssertEqual(buckets.reserve(key("192.0.2.7"), now: 1, maxWait: 0), 0)
        XCTAssertNil(buckets.reserve(key("192.0.2.7"), now: 1, maxWait: 0))
        XCTAssertEqual(buckets.reserve(key("192.0.2.7"), now: 1, maxWait: 1), 1, "held for its next token")
        XCTAssertEqual(buckets.reserve(key("192.0.2.8"), now: 1, maxWait: 0), 0, "another source is not held up")
        XCTAssertEqual(buckets.reserve(.uid(1000), now: 1, maxWait: 0), 0)
        XCTAssertNil(buckets.reserve(.uid(1000), now: 1, maxWait: 0), "a uid is one source")
    }

    /// A flood of (forged) sources cannot grow the table: a source it cannot track is reported as such, and swept
    /// buckets make room again.
    func testTheTableIsBounded() {
        let buckets = SourceBuckets(rate: 10, capacity: 2)
        XCTAssertEqual(buckets.reserve(key("192.0.2.1"), now: 1, maxWait: 0), 0)
        XCTAssertEqual(buckets.reserve(key("192.0.2.2"), now: 1, maxWait: 0), 0)
        XCTAssertEqual(buckets.reserve(key("192.0.2.3"), now: 1, maxWait: 0), .infinity, "untracked")
        XCTAssertEqual(buckets.trackedSources, 2)
        XCTAssertEqual(buckets.reserve(key("192.0.2.3"), now: 2, maxWait: 0), 0, "refilled buckets are swept")
        XCTAssertLessThanOrEqual(buckets.trackedSources, 2)
    }

    /// `max-rate`: the listener's next request is due when its bucket has a token; a reload's rate applies at once.
    func testListenerRateFollowsThePolicy() {
        let rate = ListenerRate()
        XCTAssertNil(rate.resumesAt(rate: 0, now: 0), "0 is unlimited")
        for _ in 0..<3 {
            XCTAssertNil(rate.resumesAt(rate: 3, now: 0))
            rate.count(rate: 3, now: 0)
        }
        XCTAssertEqual(try XCTUnwrap(rate.resumesAt(rate: 3, now: 0)), 1.0 / 3, accuracy: 1e-9, "empty: wait a third of a second")
        XCTAssertEqual(try XCTUnwrap(rate.resumesAt(rate: 1, now: 0)), 1, accuracy: 1e-9, "a lower rate waits longer at once")
        XCTAssertNil(rate.resumesAt(rate: 0, now: 0), "unlimited again")
        XCTAssertNil(rate.resumesAt(rate: 1, now: 0), "and a fresh bucket after that")
    }

    /// Held connections come out in the order of their turns, and only once due.
    func testHeldConnectionsComeOutWhenDue() throws {
        let held = HeldConnections()
        let client = SocketAddress(.stream, .inet(IPAddress(numeric: "127.0.0.1")!, port: 1))
        let sockets = try (0..<2).map { _ in try Socket(family: AF_INET, transport: .stream) }
        defer { sockets.forEach { $0.close() } }
        held.hold(.connection(sockets[0]), client: client, due: 5)
        held.hold(.connection(sockets[1]), client: client, due: 3)
        XCTAssertEqual(held.nextDue, 3)
        XCTAssertNil(held.takeDue(now: 2))
        XCTAssertTrue(held.takeDue(now: 4)?.request.connection === sockets[1])
        XCTAssertNil(held.takeDue(now: 4))
        XCTAssertEqual(held.takeAll().count, 1)
        XCTAssertNil(held.nextDue)
    }
}
