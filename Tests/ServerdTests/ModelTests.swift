import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--model serial|threading|forking` over real processes.
final class ModelTests: XCTestCase {
    /// Opens `count` clients at once and checks each is served while all are open.
    private func assertConcurrent(_ address: String, count: Int = 4, file: StaticString = #filePath, line: UInt = #line) throws -> [TestClient] {
        let clients = try (0..<count).map { _ in try TestClient.connect(address) }
        for (index, client) in clients.enumerated().reversed() {
            XCTAssertTrue(try client.echoes("client \(index)"), "client \(index) served while the others are open", file: file, line: line)
        }
        for (index, client) in clients.enumerated() {
            XCTAssertTrue(try client.echoes("again \(index)"), file: file, line: line)
        }
        return clients
    }

    func testThreadingServesConcurrentClientsInOneProcess() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "threading", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(2)
        let tcp = try assertConcurrent(serverd.address(0))
        let unix = try assertConcurrent("unix:\(dir.path("s.sock"))")
        XCTAssertEqual(childProcesses(of: serverd.pid), [], "threads, not processes")
        for client in tcp + unix { client.close() }
        try serverd.stop()
    }

    func testDefaultModelIsThreading() throws {
        let result = try ServerdProcess.run(["--check-config", "--listen", "echo@tcp://127.0.0.1:0"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("threading"), result.stdout)
        let serverd = try ServerdProcess(["--listen", "echo@tcp://[::1]:0"])
        try serverd.waitForListening(1)
        let clients = try assertConcurrent(serverd.address(0), count: 3)
        XCTAssertEqual(childProcesses(of: serverd.pid), [])
        clients.forEach { $0.close() }
        try serverd.stop()
    }

    func testForkingServesEachConnectionInAChildAndReapsIt() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "forking", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "stamp@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(2)
        let clients = try assertConcurrent(serverd.address(0), count: 3)
        let stamp = try TestClient.connect("unix:\(dir.path("s.sock"))")
        XCTAssertTrue(try stamp.roundTrip("forked").hasSuffix("] forked\n"))
        let children = childProcesses(of: serverd.pid)
        XCTAssertGreaterThanOrEqual(children.count, 4, "one child per open connection: \(children)")
        for client in clients + [stamp] { client.close() }
        _ = try serverd.waitFor { childProcesses(of: serverd.pid).isEmpty ? true : nil }
        for child in children {
            XCTAssertTrue(processIsGone(child), "child \(child) reaped")
        }
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("after"))
        try serverd.stop()
    }

    /// Under the forking model serverd forks only while it is single-threaded: a fork copies only
    /// the forking thread, so a lock held by another thread would hang the child forever.
    func testForkingDaemonIsSingleThreaded() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "forking", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@udp://127.0.0.1:0",
            "--listen", "stamp@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(3)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("one thread"))
        XCTAssertEqual(procStatus(serverd.pid, "Threads"), ["1"])
        try serverd.stop()
    }

    func testSerialServesOneConnectionAtATime() throws {
        let serverd = try ServerdProcess(["--model", "serial", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let first = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try first.echoes("first"))
        let second = try TestClient.connect(serverd.address(0))
        try second.send("second")
        XCTAssertTrue(second.staysSilent(for: 0.5), "serial: the second waits for the first")
        XCTAssertTrue(try first.echoes("still first"))
        first.close()
        XCTAssertEqual(try second.receive(count: 6), Array("second".utf8))
        second.close()
        XCTAssertEqual(childProcesses(of: serverd.pid), [])
        try serverd.stop()
    }

    /// Under serial, the idle timeout frees the loop from a client that went quiet.
    func testSerialIdleClientIsClosedAndTheNextIsServed() throws {
        let serverd = try ServerdProcess(["--model", "serial", "--idle-timeout", "1", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let quiet = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try quiet.echoes("then silence"))
        let next = try TestClient.connect(serverd.address(0))
        try next.send("next")
        XCTAssertEqual(try next.receive(count: 4), Array("next".utf8), "served once the quiet one timed out")
        XCTAssertTrue(quiet.isClosedByServer(timeout: 5))
        next.close()
        try serverd.stop()
    }

    /// Serial serves each listener on its own loop: a busy TCP listener does not hold up the Unix one.
    func testSerialListenersAreIndependent() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "serial", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "stamp@unix:\(dir.path("s.sock"))",
            "--listen", "echo@udp://127.0.0.1:0",
        ], directory: dir)
        try serverd.waitForListening(3)
        let busy = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try busy.echoes("busy"))
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").roundTrip("other").hasSuffix("] other\n"))
        XCTAssertEqual(try datagramRoundTrip(serverd.address(2), Array("dg".utf8)), Array("dg".utf8))
        busy.close()
        try serverd.stop()
    }

    func testDatagramsUnderEveryModel() throws {
        for model in ["serial", "threading", "forking", "event"] {
            let dir = try TemporaryDirectory()
            let serverd = try ServerdProcess([
                "--model", model, "--listen", "echo@udp://127.0.0.1:0", "--listen", "stamp@unixgram:\(dir.path("g.sock"))",
            ], directory: dir)
            try serverd.waitForListening(2)
            for round in 0..<3 {
                XCTAssertEqual(try datagramRoundTrip(serverd.address(0), Array("\(model) \(round)".utf8)), Array("\(model) \(round)".utf8))
            }
            let stamped = try XCTUnwrap(try datagramRoundTrip("unixgram:\(dir.path("g.sock"))", Array("s\n".utf8)))
            XCTAssertTrue(String(decoding: stamped, as: UTF8.self).hasSuffix("] s"), model)
            try serverd.stop()
        }
    }

    func testExecUnderEveryModel() throws {
        for model in ["serial", "threading", "forking", "event"] {
            let serverd = try ServerdProcess(["--model", model, "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/sh", "-c", "echo $PROTO; cat"])
            try serverd.waitForListening(1)
            let client = try TestClient.connect(serverd.address(0))
            XCTAssertEqual(try client.receiveLine(), "TCP\n", model)
            XCTAssertTrue(try client.echoes("cat \(model)\n"))
            try client.finishSending()
            XCTAssertEqual(try client.receiveAll(), [])
            if model != "serial" {
                let a = try TestClient.connect(serverd.address(0))
                let b = try TestClient.connect(serverd.address(0))
                XCTAssertEqual(try b.receiveLine(), "TCP\n", "\(model): concurrent exec")
                XCTAssertEqual(try a.receiveLine(), "TCP\n")
                a.close()
                b.close()
            }
            try serverd.stop()
        }
    }

    func testUnknownModelIsAUsageError() throws {
        let result = try ServerdProcess.run(["--model", "sideways", "--listen", "echo@tcp://127.0.0.1:0"])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.split(separator: "\n").last?.contains("--model") == true, result.stderr)
    }
}
