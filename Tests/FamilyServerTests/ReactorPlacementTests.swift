@testable import FamilyServer
import Glibc
import XCTest

/// Where a reactor pool puts the connections its serve loops accept: on the accepting reactor while it has time to
/// spare, on the least loaded one only when it is busy and a processor is idle; and the two measures behind that,
/// a reactor's busy window and the machine's idle processors from `/proc/stat`.
final class ReactorPlacementTests: FamilyServerTestCase {
    /// Records the thread each line was received on, then echoes it; "spin" keeps the reactor busy for 0.4 s first
    /// (recorded before it starts).
    private final class Recorder: StreamEventHandler {
        let threads: ThreadLog
        init(threads: ThreadLog) { self.threads = threads }

        func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
            let line = String(decoding: bytes, as: UTF8.self)
            threads.record(line)
            if line.hasPrefix("spin") {
                let end = MonotonicClock.seconds() + 0.4
                while MonotonicClock.seconds() < end {}
            }
            connection.write(bytes)
        }
    }

    /// A server on a pool of two reactors that sees `idle` processors idle, serving in a thread of its own.
    private func serve(idle: Double, _ body: (StreamServer, ThreadLog) throws -> Void) throws {
        let reactors = try EventReactors(count: 2, logger: .init(label: "test"), idleProcessors: { _ in idle })
        defer { reactors.stop() }
        let threads = ThreadLog()
        let model = EventModel(reactors: reactors) { _ in Recorder(threads: threads) }
        let server = try StreamServer(address: address(.ipv4, .stream), handler: BaseRequestHandler.self, model: model)
        let thread = try TestThread { server.serveForever(pollInterval: 0.01) }
        defer { server.serverClose() }
        defer { thread.join() }
        defer { server.shutdown() }
        try body(server, threads)
    }

    private func echoLine(_ client: Socket, _ line: String) throws {
        try client.sendAll(Array("\(line)\n".utf8))
        XCTAssertEqual(try Client.readLine(client), Array("\(line)\n".utf8), line)
    }

    /// Connections held open all stay on the reactor that accepted them while it has time to spare, even with every
    /// processor idle (the pool used to give each new one to the reactor holding fewer).
    func testHeldConnectionsStayWhereTheyWereAcceptedWhileThatReactorHasTimeToSpare() throws {
        try serve(idle: 2) { server, threads in
            var clients: [Socket] = []
            defer { clients.forEach { $0.close() } }
            for index in 0..<6 {
                let client = try Client.connect(server.serverAddress)
                clients.append(client)
                try echoLine(client, "held \(index)")
            }
            let used = Set((0..<6).flatMap { threads.threads(of: "held \($0)\n") }.map { UInt($0) })
            XCTAssertEqual(used.count, 1, "six connections on one reactor")
        }
    }

    /// Once the accepting reactor was busy for a whole window and a processor is idle, the next connection goes to
    /// the other reactor.
    func testABusyReactorSharesWithAnIdleProcessor() throws {
        try serve(idle: 2) { server, threads in
            let (busy, next) = try busySpellThenConnection(server, threads)
            XCTAssertNotEqual(busy, next, "the connection accepted after the busy spell went to the other reactor")
        }
    }

    /// A busy reactor keeps what it accepts when no processor is idle: another thread would only wait for one.
    func testABusyReactorKeepsItsConnectionsWhenNoProcessorIsIdle() throws {
        try serve(idle: 0) { server, threads in
            let (busy, next) = try busySpellThenConnection(server, threads)
            XCTAssertEqual(busy, next, "no processor idle: served where it was accepted")
        }
    }

    /// Connection A keeps its reactor busy for 0.4 s; B connects meanwhile and is accepted after. Returns the threads
    /// that served A's spin and B.
    private func busySpellThenConnection(_ server: StreamServer, _ threads: ThreadLog) throws -> (pthread_t, pthread_t) {
        let first = try Client.connect(server.serverAddress)
        defer { first.close() }
        try echoLine(first, "warm")
        try first.sendAll(Array("spin\n".utf8))
        XCTAssertTrue(eventually { !threads.threads(of: "spin\n").isEmpty }, "the reactor began its busy spell")
        let second = try Client.connect(server.serverAddress)
        defer { second.close() }
        XCTAssertEqual(try Client.readLine(first), Array("spin\n".utf8))
        try echoLine(second, "next")
        return (try XCTUnwrap(threads.threads(of: "spin\n").first), try XCTUnwrap(threads.threads(of: "next\n").first))
    }

    func testBusyWindowIsTheShareOfTimeOutsideTheWaits() throws {
        var window = ReactorBusyWindow(now: 0)
        XCTAssertNil(window.recordWait(from: 0, to: 0.03, workedUntil: 0.04), "the window is still open")
        let fifth = try XCTUnwrap(window.recordWait(from: 0.05, to: 0.1, workedUntil: 0.1))
        XCTAssertEqual(fifth, 0.2, accuracy: 0.001, "waited 0.08 of 0.1 s")
        XCTAssertEqual(
            try XCTUnwrap(window.recordWait(from: 0.1, to: 0.1, workedUntil: 0.35)), 1, accuracy: 0.001,
            "no wait, then work: all busy")
        XCTAssertEqual(
            try XCTUnwrap(window.recordWait(from: 0.35, to: 5, workedUntil: 5)), 0, accuracy: 0.001, "a long sleep: idle")
        XCTAssertNil(window.recordWait(from: 5, to: 5.01, workedUntil: 5.01), "a new window began where the last ended")
    }

    func testStatLineTicks() throws {
        let line: Substring = "cpu  100 5 50 1000 20 3 2 1 0 0"
        let ticks = try XCTUnwrap(IdleProcessors.ticks(ofStatLine: line))
        XCTAssertEqual(ticks.idle, 1020, "idle and iowait")
        XCTAssertEqual(ticks.total, 1181, "the first eight fields; guest time is in user time already")
        XCTAssertNil(IdleProcessors.ticks(ofStatLine: "cpu0 1 2 3 4"), "a single processor's line")
        XCTAssertNil(IdleProcessors.ticks(ofStatLine: "cpu  1 2 x 4 5"))
        XCTAssertNil(IdleProcessors.ticks(ofStatLine: "intr 1 2 3 4 5"))
    }

    /// Samples a stat file written by the test: nothing known before two samples, then the idle share of the ticks in
    /// between times the processors; a sample younger than the interval is reused; an unreadable file idles all.
    func testIdleProcessorsFromTwoSamples() throws {
        let stat = path("stat")
        func write(_ text: String) { XCTAssertTrue(FileManager.default.createFile(atPath: stat, contents: Data(text.utf8))) }
        let idle = IdleProcessors(processors: 4, statPath: stat)
        write("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
        XCTAssertEqual(idle.current(now: 1), 0, "one sample tells nothing yet")
        write("cpu  400 0 200 1100 100 0 0 0 0 0\n")
        XCTAssertEqual(idle.current(now: 1.05), 0, "younger than the interval: the last value")
        XCTAssertEqual(idle.current(now: 1.2), 4 * 400 / 800, accuracy: 0.001, "400 of 800 ticks idle on 4 processors")
        let missing = IdleProcessors(processors: 4, statPath: path("missing"))
        XCTAssertEqual(missing.current(now: 1), 4)
        write("cpu  1 0 1 8 0 0 0 0 0 0\n")
        let late = IdleProcessors(processors: 4, statPath: path("missing"))
        XCTAssertEqual(late.current(now: 1), 4, "not readable yet")
        XCTAssertNoThrow(try FileManager.default.copyItem(atPath: stat, toPath: path("missing")))
        XCTAssertEqual(late.current(now: 1.05), 4, "tried again only after the interval")
        XCTAssertEqual(late.current(now: 1.2), 0, "read now: one sample, nothing known yet")
        let real = IdleProcessors()
        _ = real.current(now: 0)
        let now = real.current(now: 1)
        XCTAssertTrue((0...Double(EventReactors.onlineProcessorCount)).contains(now), "\(now) idle processors on this machine")
    }
}
