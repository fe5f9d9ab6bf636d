import FamilyServer
import Glibc
import Synchronization
import XCTest

/// A pipe that a handler blocks on until the test writes a byte to it, and a flag that says the handler is in.
private final class Gate: Sendable {
    let readEnd: Int32
    let writeEnd: Int32
    let entered = Atomic<Bool>(false)
    private let opened = Atomic<Bool>(false)

    init() throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SocketError("pipe", errno: errno) }
        (readEnd, writeEnd) = (ends[0], ends[1])
    }

    /// Lets the blocked handler return (read(2) sees the pipe's end), and any later one; once.
    func open() {
        if !opened.exchange(true, ordering: .acquiringAndReleasing) { close(writeEnd) }
    }

    deinit { close(readEnd) }
}

/// Blocks its reactor thread in read(2) on the gate's pipe as soon as a byte arrives, until the test opens the gate:
/// a handler stuck in a blocking call, which the event model forbids and a watchdog must notice.
private final class BlockingHandler: StreamEventHandler {
    let gate: Gate

    init(gate: Gate) { self.gate = gate }

    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        gate.entered.store(true, ordering: .releasing)
        var byte: UInt8 = 0
        _ = read(gate.readEnd, &byte, 1)
        connection.write(bytes)
    }
}

/// The reactors' heartbeat for a service watchdog (``EventReactors/heartbeatsAreFresh(since:)``): idle reactors,
/// asleep in epoll_wait, answer the wake-up it sends; a reactor stuck in a handler does not until the handler returns.
final class EventReactorHeartbeatTests: FamilyServerTestCase {
    /// Asks `heartbeatsAreFresh(since:)` every 10 ms until it answers true, for at most `timeout` seconds.
    private func becomesFresh(_ reactors: EventReactors, since time: UInt64, timeout: Double = 10) -> Bool {
        let deadline = MonotonicClock.seconds() + timeout
        while MonotonicClock.seconds() < deadline {
            if reactors.heartbeatsAreFresh(since: time) { return true }
            usleep(10_000)
        }
        return false
    }

    func testIdleReactorsAnswerTheWakeUp() throws {
        let reactors = try EventReactors(count: 2)
        defer { reactors.stop() }
        let since = MonotonicClock.microseconds()
        XCTAssertFalse(reactors.heartbeatsAreFresh(since: since), "no reactor passed its loop since they started")
        XCTAssertTrue(becomesFresh(reactors, since: since), "idle reactors woken by the check pass their loop")
        XCTAssertGreaterThanOrEqual(reactors.oldestHeartbeat, since)
    }

    func testAReactorStuckInAHandlerStaysStaleUntilItReturns() throws {
        let gate = try Gate()
        let reactors = try EventReactors(count: 1)
        // The gate opens first, whatever failed: a reactor still blocked would never stop.
        defer {
            gate.open()
            reactors.stop()
        }
        let model = EventModel(reactors: reactors) { _ in BlockingHandler(gate: gate) }
        let server = try TCPServer(address: address(.ipv4, .stream), handler: BaseRequestHandler.self, model: model)
        let thread = try serving(server) {
            let client = try Client.connect(connectable(server.serverAddress))
            defer { client.close() }
            try client.sendAll(Array("x".utf8))
            let deadline = MonotonicClock.seconds() + 10
            while !gate.entered.load(ordering: .acquiring) && MonotonicClock.seconds() < deadline { usleep(1_000) }
            XCTAssertTrue(gate.entered.load(ordering: .acquiring), "the handler got the byte")
            let since = MonotonicClock.microseconds()
            // Fifty checks over at least half a second, each waking the reactor again: it never passes.
            for _ in 0..<50 {
                XCTAssertFalse(reactors.heartbeatsAreFresh(since: since), "a stuck reactor reported fresh")
                usleep(10_000)
            }
            gate.open()
            XCTAssertTrue(becomesFresh(reactors, since: since), "the reactor passes once the handler returned")
            XCTAssertEqual(try Client.read(client, count: 1), Array("x".utf8))
        }
        server.shutdown()
        XCTAssertTrue(thread.join(), "serveForever did not return after shutdown()")
        server.serverClose()
    }
}
