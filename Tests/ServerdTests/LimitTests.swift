import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--max-connections`, `--max-per-source`, `--idle-timeout` and `--max-line`.
final class LimitTests: XCTestCase {
    // MARK: - --max-connections

    /// The third client of `--max-connections 2` waits in the backlog (it is not refused) and is
    /// served once one of the first two closes.
    private func assertThirdClientWaits(model: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let serverd = try ServerdProcess(["--model", model, "--max-connections", "2", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let first = try TestClient.connect(address)
        XCTAssertTrue(try first.echoes("1"), file: file, line: line)
        let second = try TestClient.connect(address)
        XCTAssertTrue(try second.echoes("2"), file: file, line: line)
        let third = try TestClient.connect(address)
        try third.send("3")
        XCTAssertTrue(third.staysSilent(for: 0.5), "the third client is not served while two are", file: file, line: line)
        XCTAssertTrue(try first.echoes("1"), "the first two keep being served", file: file, line: line)
        first.close()
        XCTAssertEqual(try third.receive(count: 1), Array("3".utf8), "served once a slot frees", file: file, line: line)
        XCTAssertTrue(try second.echoes("2"), file: file, line: line)
        XCTAssertTrue(try third.echoes("33"), file: file, line: line)
        second.close()
        third.close()
        try serverd.stop(file: file, line: line)
    }

    func testThirdClientOfMaxConnections2IsServedAfterOneClosesThreading() throws {
        try assertThirdClientWaits(model: "threading")
    }

    func testThirdClientOfMaxConnections2IsServedAfterOneClosesForking() throws {
        try assertThirdClientWaits(model: "forking")
    }

    func testThirdClientOfMaxConnections2IsServedAfterOneClosesEvent() throws {
        try assertThirdClientWaits(model: "event")
    }

    func testMaxConnectionsOnUnixListener() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("s.sock")
        let serverd = try ServerdProcess(["--max-connections", "1", "--listen", "echo@unix:\(path)"], directory: dir)
        try serverd.waitForListening(1)
        let first = try TestClient.connect("unix:\(path)")
        XCTAssertTrue(try first.echoes("a"))
        let second = try TestClient.connect("unix:\(path)")
        try second.send("b")
        XCTAssertTrue(second.staysSilent(for: 0.5))
        first.close()
        XCTAssertEqual(try second.receive(count: 1), Array("b".utf8))
        second.close()
        try serverd.stop()
    }

    /// Limits count per listener: a full listener does not hold up another one.
    func testMaxConnectionsCountsPerListener() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            max-connections = 1
            listen = ["echo@tcp://127.0.0.1:0", "echo@tcp://[::1]:0"]

            [[listener]]
            listen = "stamp@tcp://127.0.0.1:0"
            max-connections = 2
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(3)
        let first = try TestClient.connect(serverd.address(0))
        let second = try TestClient.connect(serverd.address(1))
        XCTAssertTrue(try first.echoes("a"))
        XCTAssertTrue(try second.echoes("b"), "the other listener has a slot of its own")
        let waiting = try TestClient.connect(serverd.address(0))
        try waiting.send("c")
        XCTAssertTrue(waiting.staysSilent(for: 0.5))
        let stamps = try (0..<2).map { _ in try TestClient.connect(serverd.address(2)) }
        for stamp in stamps.reversed() {
            XCTAssertTrue(try stamp.roundTrip("s").hasSuffix("] s\n"), "the table's max-connections 2")
        }
        first.close()
        XCTAssertEqual(try waiting.receive(count: 1), Array("c".utf8))
        for client in [second, waiting] + stamps { client.close() }
        try serverd.stop()
    }

    // MARK: - --max-per-source

    func testMaxPerSourceClosesTheExtraConnectionFromOneAddress() throws {
        try assertMaxPerSource(model: "threading")
    }

    func testMaxPerSourceUnderForking() throws {
        try assertMaxPerSource(model: "forking")
    }

    func testMaxPerSourceUnderEvent() throws {
        try assertMaxPerSource(model: "event")
    }

    private func assertMaxPerSource(model: String) throws {
        let serverd = try ServerdProcess(["--model", model, "--max-per-source", "1", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let first = try TestClient.connect(address)
        XCTAssertTrue(try first.echoes("first"))
        let extra = try TestClient.connect(address)
        try? extra.send("extra")
        XCTAssertTrue(extra.isClosedWithoutData(), "a second connection from 127.0.0.1 is closed unserved")
        try serverd.waitForLog("refused")
        // Another source address is counted on its own.
        let other = try TestClient.connect(address, from: "tcp://127.0.0.2:0")
        XCTAssertTrue(try other.echoes("other"))
        XCTAssertTrue(try first.echoes("still"))
        // Once the first ends, its source may connect again.
        first.close()
        other.close()
        _ = try serverd.waitFor {
            let again = try TestClient.connect(address)
            return (try? again.echoes("again")) == true ? true : nil
        }
        try serverd.stop()
    }

    func testMaxPerSourceCountsUIDsOnUnixListeners() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("s.sock")
        let serverd = try ServerdProcess(["--max-per-source", "2", "--listen", "echo@unix:\(path)"], directory: dir)
        try serverd.waitForListening(1)
        let first = try TestClient.connect("unix:\(path)")
        let second = try TestClient.connect("unix:\(path)")
        XCTAssertTrue(try first.echoes("1"))
        XCTAssertTrue(try second.echoes("2"))
        let third = try TestClient.connect("unix:\(path)")
        XCTAssertTrue(third.isClosedWithoutData(), "a third connection from uid \(getuid()) is closed")
        let log = try serverd.waitForLog("refused")
        XCTAssertTrue(log.contains("uid \(getuid())") || log.contains("uid=\(getuid())"), log)
        first.close()
        second.close()
        try serverd.stop()
    }

    // MARK: - --idle-timeout

    func testIdleConnectionIsClosedAndOthersGoOn() throws {
        try assertIdleConnectionIsClosedAndOthersGoOn(model: "threading")
    }

    func testIdleConnectionIsClosedAndOthersGoOnUnderEvent() throws {
        try assertIdleConnectionIsClosedAndOthersGoOn(model: "event")
    }

    private func assertIdleConnectionIsClosedAndOthersGoOn(model: String) throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", model, "--idle-timeout", "1", "--listen", "stamp@tcp://127.0.0.1:0", "--listen", "echo@unix:\(dir.path("e.sock"))",
        ], directory: dir)
        try serverd.waitForListening(2)
        let started = MonotonicClock.seconds()
        let idle = try TestClient.connect(serverd.address(0))
        let idleUnix = try TestClient.connect("unix:\(dir.path("e.sock"))")
        XCTAssertTrue(try idleUnix.echoes("then nothing"))
        XCTAssertTrue(idle.isClosedWithoutData(timeout: 15), "an idle stamp connection is closed")
        XCTAssertTrue(idleUnix.isClosedByServer(timeout: 15), "an idle echo connection is closed")
        XCTAssertLessThan(MonotonicClock.seconds() - started, 12, "well within a generous bound of the 1 s timeout")
        try serverd.waitForLog("idle")
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).roundTrip("alive").hasSuffix("] alive\n"))
        try serverd.stop()
    }

    /// The timeout counts idle time, not the connection's age.
    func testActiveConnectionOutlivesTheIdleTimeout() throws {
        try assertActiveConnectionOutlivesTheIdleTimeout(model: "threading")
    }

    func testActiveConnectionOutlivesTheIdleTimeoutUnderEvent() throws {
        try assertActiveConnectionOutlivesTheIdleTimeout(model: "event")
    }

    private func assertActiveConnectionOutlivesTheIdleTimeout(model: String) throws {
        let serverd = try ServerdProcess(["--model", model, "--idle-timeout", "2", "--listen", "stamp@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        let start = MonotonicClock.seconds()
        var rounds = 0
        while MonotonicClock.seconds() - start < 3 {
            XCTAssertTrue(try client.roundTrip("tick \(rounds)").hasSuffix("] tick \(rounds)\n"))
            rounds += 1
            usleep(250_000)  // pacing the client, well under the 2 s timeout; not a readiness wait
        }
        XCTAssertTrue(try client.roundTrip("after 3 s").hasSuffix("] after 3 s\n"))
        client.close()
        try serverd.stop()
    }

    func testIdleTimeoutWithForkingModel() throws {
        try assertIdleTimeout(model: "forking")
    }

    func testIdleTimeoutWithEventModel() throws {
        try assertIdleTimeout(model: "event")
    }

    private func assertIdleTimeout(model: String) throws {
        let serverd = try ServerdProcess(["--model", model, "--idle-timeout", "1", "--listen", "echo@tcp://[::1]:0"])
        try serverd.waitForListening(1)
        let idle = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try idle.echoes("x"))
        XCTAssertTrue(idle.isClosedByServer(timeout: 15))
        try serverd.stop()
    }

    // MARK: - --max-line

    func testMaxLineClosesOnlyThatConnection() throws {
        try assertMaxLineClosesOnlyThatConnection(model: "threading")
    }

    func testMaxLineClosesOnlyThatConnectionUnderEvent() throws {
        try assertMaxLineClosesOnlyThatConnection(model: "event")
    }

    private func assertMaxLineClosesOnlyThatConnection(model: String) throws {
        let serverd = try ServerdProcess(["--model", model, "--max-line", "8", "--listen", "stamp@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let bystander = try TestClient.connect(address)
        XCTAssertTrue(try bystander.roundTrip("before").hasSuffix("] before\n"))

        let exact = try TestClient.connect(address)
        XCTAssertTrue(try exact.roundTrip("12345678").hasSuffix("] 12345678\n"), "8 bytes before the LF are accepted")
        XCTAssertTrue(try exact.roundTrip("1234567\r").hasSuffix("] 1234567\n"), "7 bytes and a CR are 8")
        try exact.send("12345678\r\n")
        XCTAssertTrue(exact.isClosedWithoutData(), "8 bytes and a CR are 9: closed")

        let long = try TestClient.connect(address)
        try long.send("ok\n" + String(repeating: "z", count: 100))
        XCTAssertTrue(try long.receiveLine().hasSuffix("] ok\n"))
        XCTAssertTrue(long.isClosedWithoutData(), "a line past the limit closes the connection, even before its LF")

        XCTAssertTrue(try bystander.roundTrip("after").hasSuffix("] after\n"), "the other connection goes on")
        XCTAssertTrue(try TestClient.connect(address).roundTrip("new").hasSuffix("] new\n"))
        bystander.close()
        try serverd.stop()
    }

    func testMaxLineOnUnixAndForking() throws {
        try assertMaxLineOnUnix(model: "forking")
    }

    func testMaxLineOnUnixAndEvent() throws {
        try assertMaxLineOnUnix(model: "event")
    }

    private func assertMaxLineOnUnix(model: String) throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", model, "--max-line", "4", "--listen", "stamp@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(1)
        let bystander = try TestClient.connect("unix:\(dir.path("s.sock"))")
        let offender = try TestClient.connect("unix:\(dir.path("s.sock"))")
        try offender.send("12345\n")
        XCTAssertTrue(offender.isClosedWithoutData())
        XCTAssertTrue(try bystander.roundTrip("1234").hasSuffix("] 1234\n"))
        bystander.close()
        try serverd.stop()
    }
}
