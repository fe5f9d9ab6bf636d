import FamilyServer
import Foundation
import Glibc
import XCTest

/// Issue 11, item 7: a client that trickles is cut by `--request-timeout` or `--min-rate` however it paces its
/// bytes, each cut logged with its reason; `--max-per-source` counts per address prefix.
final class SlowClientTests: XCTestCase {
    /// Sends one byte every 0.3 s (under the 1 s idle timeout, so only a whole-request deadline can stop it) until
    /// the server closes the connection; gives up after `limit` bytes.
    /// - Returns: Whether the server closed the connection.
    private func trickle(_ client: TestClient, limit: Int = 100) -> Bool {
        for _ in 0..<limit {
            do {
                try client.send("x")
            } catch {
                return true  // EPIPE or ECONNRESET: the server is gone
            }
            usleep(300_000)  // the client's pace, not a wait for the server
            if client.staysSilent(for: 0.001) == false {
                return true  // EOF or reset: stamp answers nothing before the LF
            }
        }
        return false
    }

    /// Before: each byte restarted the idle timeout, and the trickler kept its worker until it stopped.
    func testTricklingLineIsCutAtTheRequestDeadline() throws {
        for model in ["threading", "event"] {
            try assertTricklingLineIsCut(model: model)
        }
    }

    private func assertTricklingLineIsCut(model: String) throws {
        let serverd = try ServerdProcess([
            "--model", model, "--request-timeout", "2", "--idle-timeout", "1", "--listen", "stamp@tcp://127.0.0.1:0",
        ])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(trickle(client), "the trickling client is cut")
        let log = try serverd.waitForLog("request not complete within request-timeout")
        XCTAssertTrue(log.contains("stamp@tcp://127.0.0.1:0: closing connection from tcp://127.0.0.1:"), log)
        let fresh = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try fresh.roundTrip("prompt").hasSuffix("] prompt\n"), "a prompt client is served")
        fresh.close()
        try serverd.stop()
    }

    /// The deadline counts per line: a client that sends whole lines slowly is served for longer than it.
    func testRequestDeadlineStartsWithEachLine() throws {
        for model in ["threading", "event"] {
            let serverd = try ServerdProcess(["--model", model, "--request-timeout", "1", "--listen", "stamp@tcp://127.0.0.1:0"])
            try serverd.waitForListening(1)
            let client = try TestClient.connect(serverd.address(0))
            for round in 0..<6 {
                XCTAssertTrue(try client.roundTrip("line \(round)").hasSuffix("] line \(round)\n"), model)
                usleep(300_000)  // the client's pace between lines
            }
            client.close()
            try serverd.stop()
        }
    }

    /// Echo has no requests: `--min-rate` cuts a connection whose average falls below it once older than the grace.
    func testMinRateCutsASlowEchoClient() throws {
        for model in ["threading", "event"] {
            try assertMinRateCutsASlowEchoClient(model: model)
        }
    }

    private func assertMinRateCutsASlowEchoClient(model: String) throws {
        let serverd = try ServerdProcess([
            "--model", model, "--min-rate", "100", "--request-timeout", "1", "--idle-timeout", "1", "--listen", "echo@tcp://127.0.0.1:0",
        ])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        var cut = false
        for _ in 0..<100 where !cut {
            do {
                try client.send("x")
                cut = try client.receive(count: 1).isEmpty
            } catch {
                cut = true
            }
            usleep(300_000)  // the client's pace
        }
        XCTAssertTrue(cut, "the slow echo client is cut")
        try serverd.waitForLog("too slow, below min-rate 100 bytes/s")
        try serverd.stop()
    }

    // MARK: - Per-source prefixes

    /// Before: each address counted on its own, so 127.0.0.3 was served beside 127.0.0.2.
    func testMaxPerSourceCountsPerIPv4Prefix() throws {
        let serverd = try ServerdProcess([
            "--max-per-source", "1", "--source-prefix-v4", "24", "--listen", "echo@tcp://127.0.0.1:0",
        ])
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let first = try TestClient.connect(address, from: "tcp://127.0.0.2:0")
        XCTAssertTrue(try first.echoes("first"))
        let neighbour = try TestClient.connect(address, from: "tcp://127.0.0.3:0")
        try? neighbour.send("same /24")
        XCTAssertTrue(neighbour.isClosedWithoutData(), "127.0.0.3 is in 127.0.0.2's /24")
        let log = try serverd.waitForLog("refused")
        XCTAssertTrue(log.contains("source 127.0.0.0/24"), log)
        let elsewhere = try TestClient.connect(address, from: "tcp://127.0.1.2:0")
        XCTAssertTrue(try elsewhere.echoes("another /24"))
        for client in [first, neighbour, elsewhere] { client.close() }
        try serverd.stop()
    }
}
