import FamilyServer
import XCTest

@testable import serverd

/// The reply budget of UDP listeners (issue 11, item 2), for sources that are not on this host:
/// the tests decide on addresses without sending to them (only loopback traffic leaves a test).
final class ReplyRateLimiterTests: XCTestCase {
    private let elsewhere = SocketAddress(.datagram, .inet(IPAddress(numeric: "192.0.2.7")!, port: 40000))

    /// The source key of an address, a /32 or /64 as the defaults make it.
    private func key(_ text: String) -> SourceKey {
        SourceKey(peer: SocketAddress(.datagram, .inet(IPAddress(numeric: text)!, port: 40000)), settings: ListenerPolicy(service: .echo, values: OptionTable.resolve(.listener, layers: [])))!
    }

    func testABurstThenTheRate() {
        let limiter = ReplyRateLimiter(rate: 5)
        let source = key("192.0.2.7")
        XCTAssertEqual((0..<20).filter { _ in limiter.allows(source, now: 100) }.count, 5, "a burst of one second's budget")
        XCTAssertFalse(limiter.allows(source, now: 100.1))
        XCTAssertTrue(limiter.allows(source, now: 100.2), "one reply per 1/5 s after the burst")
        XCTAssertFalse(limiter.allows(source, now: 100.2))
        XCTAssertEqual((0..<20).filter { _ in limiter.allows(source, now: 200) }.count, 5, "refilled, never beyond the burst")
    }

    func testSourcesHaveBudgetsOfTheirOwn() {
        let limiter = ReplyRateLimiter(rate: 1)
        XCTAssertTrue(limiter.allows(key("192.0.2.7"), now: 1))
        XCTAssertFalse(limiter.allows(key("192.0.2.7"), now: 1))
        XCTAssertTrue(limiter.allows(key("192.0.2.8"), now: 1))
        XCTAssertTrue(limiter.allows(key("2001:db8::1"), now: 1))
        XCTAssertFalse(limiter.allows(key("2001:db8::2"), now: 1), "one IPv6 /64 is one source")
    }

    func testTheTableIsBoundedAndFailsClosed() {
        let limiter = ReplyRateLimiter(rate: 10, capacity: 2)
        XCTAssertTrue(limiter.allows(key("192.0.2.1"), now: 1))
        XCTAssertTrue(limiter.allows(key("192.0.2.2"), now: 1))
        XCTAssertFalse(limiter.allows(key("192.0.2.3"), now: 1), "a full table refuses a new source")
        XCTAssertEqual(limiter.trackedSources, 2)
        XCTAssertTrue(limiter.allows(key("192.0.2.3"), now: 2.5), "buckets that refilled are swept")
        XCTAssertLessThanOrEqual(limiter.trackedSources, 2)
    }

    func testTheGuardLimitsRepliesToRemoteSourcesOnly() {
        var guardian = ReflectionGuard(replyRatePerSource: 5)
        let remote = (0..<50).filter { _ in guardian.refusal(for: elsewhere, source: { self.key("192.0.2.7") }) == nil }.count
        XCTAssertGreaterThanOrEqual(remote, 5)
        XCTAssertLessThan(remote, 50)
        XCTAssertEqual(guardian.refusal(for: elsewhere, source: { self.key("192.0.2.7") })?.rule, .replyRate)
        let loopback = SocketAddress(.datagram, .inet(IPAddress(numeric: "127.0.0.1")!, port: 40000))
        XCTAssertEqual((0..<50).filter { _ in guardian.refusal(for: loopback, source: { self.key("127.0.0.1") }) == nil }.count, 50)
    }

    func testPortRulesHoldForEverySource() {
        var guardian = ReflectionGuard(replyRatePerSource: 0)
        for (port, rule) in [(UInt16(0), ReflectionGuard.Rule.sourcePortZero), (7, .privilegedPort), (1023, .privilegedPort)] {
            let source = SocketAddress(.datagram, .inet(IPAddress(numeric: "::1")!, port: port))
            XCTAssertEqual(guardian.refusal(for: source, source: { self.key("::1") })?.rule, rule, "port \(port)")
        }
        XCTAssertNil(guardian.refusal(for: SocketAddress(.datagram, .inet(IPAddress(numeric: "::1")!, port: 1024)), source: { self.key("::1") }))
    }

    func testOwnPortsCopyFollowsListenersThatComeAndGo() {
        var copy = OwnDatagramPorts.Copy()
        // The registry is the process's own, shared with the listeners of tests running beside this one: a port above
        // Linux's ephemeral range (32768–60999), which no listener bound to port 0 gets.
        let port: UInt16 = 64_999
        XCTAssertFalse(copy.contains(port))
        OwnDatagramPorts.add(port)
        XCTAssertTrue(copy.contains(port), "a listener that came is seen by a copy taken before")
        OwnDatagramPorts.add(port)
        OwnDatagramPorts.remove(port)
        XCTAssertTrue(copy.contains(port), "one of two listeners on the port is left")
        OwnDatagramPorts.remove(port)
        XCTAssertFalse(copy.contains(port), "and once both went, the copy forgets the port")
    }

    func testLoopbackAddresses() {
        for text in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.2"] {
            XCTAssertTrue(IPAddress(numeric: text)!.isLoopback, text)
        }
        for text in ["128.0.0.1", "::2", "::ffff:10.0.0.1", "::"] {
            XCTAssertFalse(IPAddress(numeric: text)!.isLoopback, text)
        }
    }
}
