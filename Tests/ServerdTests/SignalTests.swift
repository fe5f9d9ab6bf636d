import FamilyServer
import Foundation
import Glibc
import XCTest

/// SIGTERM and SIGINT (graceful stop, drain, a second signal cutting the drain short) and SIGPIPE.
final class SignalTests: XCTestCase {
    /// An in-flight connection finishes within `--drain-timeout`; the listeners are closed at once;
    /// socket file and pidfile are removed; exit 0.
    private func assertGracefulStop(_ signal: Int32, model: String = "threading", file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try TemporaryDirectory()
        let socketPath = dir.path("s.sock")
        let pidfile = dir.path("serverd.pid")
        let serverd = try ServerdProcess([
            "--model", model, "--drain-timeout", "20", "--pidfile", pidfile,
            "--listen", "stamp@unix:\(socketPath)", "--listen", "stamp@tcp://127.0.0.1:0",
        ], directory: dir)
        try serverd.waitForListening(2)
        // The pidfile follows the `listening on` lines once every listener serves.
        XCTAssertEqual(try serverd.waitFor(file: file, line: line) { pidFromFile(pidfile) }, serverd.pid, file: file, line: line)
        let tcpAddress = serverd.address(1)
        let inFlight = try TestClient.connect("unix:\(socketPath)")
        XCTAssertTrue(try inFlight.roundTrip("before").hasSuffix("] before\n"), file: file, line: line)
        let inFlightTCP = try TestClient.connect(tcpAddress)
        XCTAssertTrue(try inFlightTCP.roundTrip("tcp").hasSuffix("] tcp\n"), file: file, line: line)

        serverd.send(signal)
        try serverd.waitForLog("stopping", file: file, line: line)
        _ = try serverd.waitFor(file: file, line: line) { connectionIsRefused(tcpAddress) ? true : nil }
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath), "the listener's socket file goes at once", file: file, line: line)
        XCTAssertTrue(serverd.process.isRunning, "still draining", file: file, line: line)
        XCTAssertTrue(try inFlight.roundTrip("during").hasSuffix("] during\n"), "the in-flight connection is still served", file: file, line: line)
        XCTAssertTrue(try inFlightTCP.roundTrip("during").hasSuffix("] during\n"), file: file, line: line)
        inFlight.close()
        inFlightTCP.close()
        let closed = MonotonicClock.seconds()
        XCTAssertEqual(try serverd.waitForExit(file: file, line: line), 0, serverd.stderr, file: file, line: line)
        XCTAssertLessThan(MonotonicClock.seconds() - closed, 10, "exits once drained, not at the drain timeout", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile), "pidfile removed", file: file, line: line)
    }

    func testSIGTERMDrainsInFlightConnections() throws {
        try assertGracefulStop(SIGTERM)
    }

    func testSIGINTDrainsInFlightConnections() throws {
        try assertGracefulStop(SIGINT)
    }

    func testSIGTERMDrainWithForkingModel() throws {
        try assertGracefulStop(SIGTERM, model: "forking")
    }

    func testSIGTERMDrainWithEventModel() throws {
        try assertGracefulStop(SIGTERM, model: "event")
    }

    func testSIGTERMDrainWithSerialModel() throws {
        let serverd = try ServerdProcess(["--model", "serial", "--drain-timeout", "20", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.echoes("serial"))
        serverd.send(SIGTERM)
        try serverd.waitForLog("stopping")
        XCTAssertTrue(try client.echoes("still"))
        client.close()
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }

    /// A second SIGTERM cuts the drain short: the connection is closed, files removed, exit 0,
    /// long before the drain timeout.
    func testSecondSignalCutsTheDrainShort() throws {
        try assertSecondSignalCutsTheDrainShort(model: "threading")
    }

    func testSecondSignalCutsTheDrainShortUnderEvent() throws {
        try assertSecondSignalCutsTheDrainShort(model: "event")
    }

    private func assertSecondSignalCutsTheDrainShort(model: String) throws {
        let dir = try TemporaryDirectory()
        let socketPath = dir.path("s.sock")
        let pidfile = dir.path("serverd.pid")
        let serverd = try ServerdProcess([
            "--model", model, "--drain-timeout", "120", "--pidfile", pidfile, "--listen", "echo@unix:\(socketPath)",
            "--listen", "stamp@tcp://[::1]:0",
        ], directory: dir)
        try serverd.waitForListening(2)
        let unixClient = try TestClient.connect("unix:\(socketPath)")
        XCTAssertTrue(try unixClient.echoes("held"))
        let tcpClient = try TestClient.connect(serverd.address(1))
        XCTAssertTrue(try tcpClient.roundTrip("held").hasSuffix("] held\n"))
        serverd.send(SIGTERM)
        try serverd.waitForLog("stopping")
        XCTAssertTrue(try unixClient.echoes("draining"))
        let cut = MonotonicClock.seconds()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(timeout: 30), 0, serverd.stderr)
        XCTAssertLessThan(MonotonicClock.seconds() - cut, 20, "the second signal ends the 120 s drain")
        XCTAssertTrue(unixClient.isClosedByServer(timeout: 5))
        XCTAssertTrue(tcpClient.isClosedByServer(timeout: 5))
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath))
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile))
    }

    func testSecondSignalCutsForkedAndExecConnectionsShort() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "forking", "--drain-timeout", "120", "--listen", "echo@tcp://127.0.0.1:0",
            "--listen", "exec@unix:\(dir.path("x.sock"))", "--", "/bin/cat",
        ], directory: dir)
        try serverd.waitForListening(2)
        let echo = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try echo.echoes("e"))
        let exec = try TestClient.connect("unix:\(dir.path("x.sock"))")
        XCTAssertTrue(try exec.echoes("cat"))
        serverd.send(SIGINT)
        try serverd.waitForLog("stopping")
        serverd.send(SIGINT)
        XCTAssertEqual(try serverd.waitForExit(timeout: 30), 0, serverd.stderr)
        XCTAssertTrue(echo.isClosedByServer(timeout: 5))
        XCTAssertTrue(exec.isClosedByServer(timeout: 5))
        XCTAssertEqual(childProcesses(of: serverd.pid), [])
    }

    /// When the drain timeout runs out, the remaining connections are closed and serverd exits 0.
    func testDrainTimeoutClosesRemainingConnections() throws {
        try assertDrainTimeoutClosesRemainingConnections(model: "threading")
    }

    func testDrainTimeoutClosesRemainingConnectionsUnderEvent() throws {
        try assertDrainTimeoutClosesRemainingConnections(model: "event")
    }

    private func assertDrainTimeoutClosesRemainingConnections(model: String) throws {
        let dir = try TemporaryDirectory()
        let pidfile = dir.path("serverd.pid")
        let serverd = try ServerdProcess([
            "--model", model, "--drain-timeout", "1", "--pidfile", pidfile, "--listen", "echo@tcp://127.0.0.1:0",
            "--listen", "echo@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(2)
        let client = try TestClient.connect(serverd.address(0))
        XCTAssertTrue(try client.echoes("held"))
        let unixClient = try TestClient.connect("unix:\(dir.path("s.sock"))")
        XCTAssertTrue(try unixClient.echoes("held"))
        let stopped = MonotonicClock.seconds()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(timeout: 30), 0, serverd.stderr)
        XCTAssertLessThan(MonotonicClock.seconds() - stopped, 15)
        XCTAssertTrue(client.isClosedByServer(timeout: 5))
        XCTAssertTrue(unixClient.isClosedByServer(timeout: 5))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("s.sock")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidfile))
    }

    func testIdleDaemonStopsPromptly() throws {
        let serverd = try ServerdProcess(["--listen", "echo@udp://127.0.0.1:0", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(2)
        let stopped = MonotonicClock.seconds()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
        XCTAssertLessThan(MonotonicClock.seconds() - stopped, 8, "no connection in flight: no drain wait")
    }

    /// SIGPIPE is ignored: a client that vanishes while serverd writes to it ends only its own connection.
    func testVanishingClientEndsOnlyItsConnection() throws {
        for model in ["threading", "forking", "serial", "event"] {
            let serverd = try ServerdProcess(["--model", model, "--listen", "echo@tcp://127.0.0.1:0"])
            try serverd.waitForListening(1)
            let address = serverd.address(0)
            let bystander: TestClient? = model == "serial" ? nil : try TestClient.connect(address)
            XCTAssertTrue(try bystander?.echoes("b") ?? true)
            for _ in 0..<3 {
                let rude = try TestClient.connect(address)
                // Lots of data that serverd echoes into a socket nobody reads, then vanish with a reset.
                try? rude.socket.setTimeouts(receive: 2, send: 2)
                try? rude.send([UInt8](repeating: 0x61, count: 64 * 1024))
                var linger = linger(l_onoff: 1, l_linger: 0)
                _ = setsockopt(rude.socket.fileDescriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
                rude.close()
            }
            XCTAssertTrue(try bystander?.echoes("still here") ?? true, model)
            _ = try serverd.waitFor {
                (try? TestClient.connect(address).echoes("new")) == true ? true : nil
            }
            XCTAssertTrue(serverd.process.isRunning, "\(model): serverd survives\n\(serverd.stderr)")
            bystander?.close()
            try serverd.stop()
        }
    }
}
