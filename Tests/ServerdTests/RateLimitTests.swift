import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--max-rate` and `--max-rate-per-source` (SPEC section 5, issue 15) over real sockets: excess is deferred — clients
/// wait in the backlog — before anything is refused.
///
/// The pace is read from the times the services themselves report (daytime's clock, `date` in an exec child), never
/// from how fast this host is: at most one second's burst plus one second's rate in any second of that clock (a safe
/// upper bound), and the admissions spread over more than one second, which the rate itself guarantees.
final class RateLimitTests: XCTestCase {
    /// The second of the day of the first `HH:MM:SS` in `line` (daytime's `Thu Nov 26 13:55:52 2026`, `date +%T`).
    private func secondOfDay(_ line: String) -> Int? {
        guard let time = line.split(whereSeparator: \.isWhitespace).first(where: { $0.contains(":") }) else { return nil }
        let parts = time.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        return parts[0] * 3600 + parts[1] * 60 + parts[2]
    }

    /// Connects `count` clients at once (all wait in the backlog), then reads each one's first line and closes it.
    /// - Returns: the second of the day each line reports.
    private func linesOfClients(_ count: Int, to address: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        let clients = try (0..<count).map { _ in try TestClient.connect(address) }
        return try clients.map { client in
            defer { client.close() }
            let text = try client.receiveLine()
            return try XCTUnwrap(secondOfDay(text), "a time in '\(text)': every client is served", file: file, line: line)
        }
    }

    /// Each second of the service's clock holds at most a burst plus a second's rate, and the whole spreads over
    /// more than one second.
    private func assertPaced(_ seconds: [Int], rate: Int, file: StaticString = #filePath, line: UInt = #line) {
        let perSecond = Dictionary(grouping: seconds, by: { $0 }).mapValues(\.count)
        XCTAssertLessThanOrEqual(perSecond.values.max() ?? 0, 2 * rate, "admissions per second: \(perSecond)", file: file, line: line)
        XCTAssertGreaterThan(perSecond.count, 1, "admissions spread over time: \(perSecond)", file: file, line: line)
    }

    // MARK: - --max-rate

    /// The acceptance: `--max-rate 5` lets 5 connections in per second and defers the rest without refusing
    /// within the backlog.
    private func assertMaxRate5Defers(model: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let serverd = try ServerdProcess(["--model", model, "--max-rate", "5", "--listen", "daytime@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let seconds = try linesOfClients(15, to: serverd.address(0), file: file, line: line)
        assertPaced(seconds, rate: 5, file: file, line: line)
        XCTAssertFalse(serverd.stderr.contains("refused"), serverd.stderr, file: file, line: line)
        try serverd.stop(file: file, line: line)
    }

    func testMaxRate5DefersWithoutRefusingThreading() throws {
        try assertMaxRate5Defers(model: "threading")
    }

    func testMaxRate5DefersWithoutRefusingForking() throws {
        try assertMaxRate5Defers(model: "forking")
    }

    func testMaxRate5DefersWithoutRefusingEvent() throws {
        try assertMaxRate5Defers(model: "event")
    }

    func testMaxRate5DefersWithoutRefusingSerial() throws {
        try assertMaxRate5Defers(model: "serial")
    }

    func testMaxRateOnAUnixListener() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("daytime.sock")
        let serverd = try ServerdProcess(["--max-rate", "2", "--listen", "daytime@unix:\(path)"], directory: dir)
        try serverd.waitForListening(1)
        assertPaced(try linesOfClients(6, to: "unix:\(path)"), rate: 2)
        try serverd.stop()
    }

    /// Exec listeners under threading are served by the daemon's control loop: it too waits for the next token.
    func testMaxRateOnAnExecListenerServedByTheControlLoop() throws {
        let serverd = try ServerdProcess([
            "--max-rate", "3", "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/date", "+%T",
        ])
        try serverd.waitForListening(1)
        assertPaced(try linesOfClients(9, to: serverd.address(0)), rate: 3)
        XCTAssertFalse(serverd.stderr.contains("refused"), serverd.stderr)
        try serverd.stop()
    }

    /// Datagram listeners count datagrams: the socket is not read while the bucket is empty, and the datagrams wait
    /// in the receive buffer, none lost.
    func testMaxRateOnADatagramListenerDefersDatagrams() throws {
        let serverd = try ServerdProcess(["--max-rate", "4", "--listen", "daytime@udp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let target = try SocketAddress(parsing: serverd.address(0))
        let socket = try Socket(family: target.family, transport: .datagram)
        defer { socket.close() }
        try socket.setTimeouts(receive: 10, send: 10)
        for index in 0..<12 { try socket.sendDatagram(Array("\(index)".utf8), to: target) }
        var seconds: [Int] = []
        for _ in 0..<12 {
            let reply = try XCTUnwrap(try socket.receiveDatagram(maxSize: 65536)?.bytes, "every datagram is answered")
            seconds.append(try XCTUnwrap(secondOfDay(String(decoding: reply, as: UTF8.self))))
        }
        assertPaced(seconds, rate: 4)
        try serverd.stop()
    }

    /// A burst queued whole before serverd reads (it is stopped meanwhile) is taken in batches of at most the tokens
    /// in the bucket: the rest waits in the receive buffer, none lost.
    func testMaxRateTakesNoMoreOfAQueuedBurstThanTheBucketHolds() throws {
        let serverd = try ServerdProcess(["--max-rate", "3", "--listen", "daytime@udp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let target = try SocketAddress(parsing: serverd.address(0))
        let socket = try Socket(family: target.family, transport: .datagram)
        defer { socket.close() }
        try socket.setTimeouts(receive: 10, send: 10)
        serverd.send(SIGSTOP)
        do {
            defer { serverd.send(SIGCONT) }
            for index in 0..<12 { try socket.sendDatagram(Array("\(index)".utf8), to: target) }
        }
        var seconds: [Int] = []
        for _ in 0..<12 {
            let reply = try XCTUnwrap(try socket.receiveDatagram(maxSize: 65536)?.bytes, "every datagram is answered")
            seconds.append(try XCTUnwrap(secondOfDay(String(decoding: reply, as: UTF8.self))))
        }
        assertPaced(seconds, rate: 3)
        try serverd.stop()
    }

    /// A reload that changes the rate applies to new connections at once.
    func testAReloadChangesTheRate() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, "max-rate = 1000000\nlisten = [\"daytime@tcp://127.0.0.1:0\"]\n")
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        _ = try writeConfig(dir, "max-rate = 1\nlisten = [\"daytime@tcp://127.0.0.1:0\"]\n")
        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept")
        assertPaced(try linesOfClients(6, to: address), rate: 1)
        try serverd.stop()
    }

    // MARK: - --max-rate-per-source

    /// Past its source's rate a connection is held for its turn, and refused (closed unserved, logged) only when the
    /// turn is too far away; another source is not held up.
    private func assertMaxRatePerSourceHoldsThenRefuses(model: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let serverd = try ServerdProcess([
            "--model", model, "--max-rate-per-source", "2", "--listen", "daytime@tcp://127.0.0.1:0",
        ])
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let clients = try (0..<8).map { _ in try TestClient.connect(address) }
        let other = try TestClient.connect(address, from: "tcp://127.0.0.2:0")
        XCTAssertNotNil(secondOfDay(try other.receiveLine()), "127.0.0.2 has a rate of its own", file: file, line: line)
        other.close()
        var served = 0
        for client in clients {
            if let text = try? client.receiveLine(), secondOfDay(text) != nil { served += 1 }
            client.close()
        }
        XCTAssertGreaterThanOrEqual(served, 3, "a burst of 2, then at least one held for its turn and served", file: file, line: line)
        XCTAssertLessThan(served, 8, "the rest refused", file: file, line: line)
        let log = try serverd.waitForLog("refused tcp://127.0.0.1:", file: file, line: line)
        XCTAssertTrue(log.contains("more than 2 connections per second from it"), log, file: file, line: line)
        try serverd.stop(file: file, line: line)
    }

    func testMaxRatePerSourceHoldsThenRefusesOneSourceOnlyThreading() throws {
        try assertMaxRatePerSourceHoldsThenRefuses(model: "threading")
    }

    func testMaxRatePerSourceHoldsThenRefusesOneSourceOnlyForking() throws {
        try assertMaxRatePerSourceHoldsThenRefuses(model: "forking")
    }

    func testMaxRatePerSourceHoldsThenRefusesOneSourceOnlySerial() throws {
        try assertMaxRatePerSourceHoldsThenRefuses(model: "serial")
    }

    func testMaxRatePerSourceHoldsThenRefusesOneSourceOnlyEvent() throws {
        try assertMaxRatePerSourceHoldsThenRefuses(model: "event")
    }

    /// An exec listener's held connection gets its program once its turn comes (from the control loop under
    /// threading).
    func testMaxRatePerSourceHoldsExecConnections() throws {
        let serverd = try ServerdProcess([
            "--max-rate-per-source", "1", "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/echo", "ran",
        ])
        try serverd.waitForListening(1)
        let clients = try (0..<2).map { _ in try TestClient.connect(serverd.address(0)) }
        for client in clients {
            XCTAssertEqual(try client.receiveLine(), "ran\n", "the first at once, the second held for 1 s, then run")
            client.close()
        }
        XCTAssertFalse(serverd.stderr.contains("refused"), serverd.stderr)
        try serverd.stop()
    }

    /// A Unix peer's source is its uid.
    func testMaxRatePerSourceCountsUIDsOnUnixListeners() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("s.sock")
        let serverd = try ServerdProcess(["--max-rate-per-source", "1", "--listen", "echo@unix:\(path)"], directory: dir)
        try serverd.waitForListening(1)
        let clients = try (0..<5).map { _ in try TestClient.connect("unix:\(path)") }
        var served = 0
        for client in clients {
            try? client.send("u")
            if (try? client.receive(count: 1)) == Array("u".utf8) { served += 1 }
            client.close()
        }
        XCTAssertGreaterThanOrEqual(served, 2, "one at once, one held for its turn")
        XCTAssertLessThan(served, 5)
        let log = try serverd.waitForLog("refused uid \(getuid())")
        XCTAssertTrue(log.contains("more than 1 connections per second"), log)
        try serverd.stop()
    }

    /// A datagram past its source's rate is dropped (logged, throttled); another source is still answered.
    func testMaxRatePerSourceDropsDatagramsOfOneSource() throws {
        let serverd = try ServerdProcess(["--max-rate-per-source", "3", "--listen", "echo@udp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let target = try SocketAddress(parsing: serverd.address(0))
        let socket = try Socket(family: target.family, transport: .datagram)
        defer { socket.close() }
        try socket.setTimeouts(receive: 1, send: 10)
        for index in 0..<10 { try socket.sendDatagram(Array("\(index)".utf8), to: target) }
        var replies = 0
        while (try? socket.receiveDatagram(maxSize: 65536)) != nil { replies += 1 }
        XCTAssertGreaterThanOrEqual(replies, 3, "the burst")
        XCTAssertLessThan(replies, 10, "the rest dropped")
        let log = try serverd.waitForLog("dropped a datagram from udp://127.0.0.1:")
        XCTAssertTrue(log.contains("more than 3 datagrams per second from it"), log)
        let other = try Socket(family: target.family, transport: .datagram)
        defer { other.close() }
        try other.bind(to: SocketAddress(parsing: "udp://127.0.0.2:0"))
        try other.setTimeouts(receive: 10, send: 10)
        try other.sendDatagram(Array("other".utf8), to: target)
        XCTAssertEqual(try other.receiveDatagram(maxSize: 65536)?.bytes, Array("other".utf8))
        try serverd.stop()
    }

    // MARK: - Ranges and wait mode

    func testRatesOutsideTheirRangeAreUsageErrors() throws {
        try assertServerdFails(
            ["--max-rate=-1", "--listen", "echo@tcp://127.0.0.1:0", "--check-config"], status: 64,
            mentioning: ["--max-rate", "0 to 1000000"])
        try assertServerdFails(
            ["--max-rate-per-source", "1000001", "--listen", "echo@tcp://127.0.0.1:0", "--check-config"], status: 64,
            mentioning: ["--max-rate-per-source", "0 to 1000000"])
    }

    func testRateKeysOutsideTheirRangeAreConfigurationErrors() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            max-rate = 5

            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            max-rate-per-source = -3
            """)
        try assertServerdFails(
            ["--config", config, "--check-config"], status: 78,
            mentioning: ["\(config):5", "max-rate-per-source", "0 to 1000000"])
    }

    /// In wait mode the program accepts or reads itself: serverd cannot pace it, and says so rather than look as if it did.
    func testWaitModeRefusesTheRates() throws {
        try assertServerdFails(
            ["--wait", "--max-rate", "5", "--listen", "exec@udp://127.0.0.1:0", "--check-config", "--", "/bin/cat"],
            status: 64, mentioning: ["max-rate"])
    }
}
