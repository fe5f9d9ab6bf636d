import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--model event` and `--workers` over real processes: connections on a fixed set of reactor threads, the line
/// services as state machines, many idle connections held cheaply through a reload and a drain, and a client that
/// does not read its replies stalling only itself.
final class EventModelTests: XCTestCase {
    private func threads(_ serverd: ServerdProcess) -> Int { Int(procStatus(serverd.pid, "Threads").first ?? "") ?? -1 }

    private func residentKiB(_ serverd: ServerdProcess) -> Int { Int(procStatus(serverd.pid, "VmRSS").first ?? "") ?? -1 }

    func testConnectionsAreServedOnTheReactorThreadsAlone() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "event", "--workers", "2", "--listen", "echo@tcp://127.0.0.1:0",
            "--listen", "stamp@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(2)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("warm"))
        let before = threads(serverd)
        let clients = try (0..<50).map { index in
            try TestClient.connect(index.isMultiple(of: 2) ? serverd.address(0) : "unix:\(dir.path("s.sock"))")
        }
        for (index, client) in clients.enumerated().reversed() {
            if index.isMultiple(of: 2) {
                XCTAssertTrue(try client.echoes("client \(index)"))
            } else {
                XCTAssertTrue(try client.roundTrip("client \(index)").hasSuffix("] client \(index)\n"))
            }
        }
        XCTAssertEqual(threads(serverd), before, "50 open connections start no thread")
        XCTAssertEqual(childProcesses(of: serverd.pid), [], "nor a process")
        clients.forEach { $0.close() }
        try serverd.stop()
    }

    func testWorkersSetsTheReactorThreads() throws {
        var counts: [Int] = []
        for workers in [1, 3] {
            let serverd = try ServerdProcess(["--model", "event", "--workers", "\(workers)", "--listen", "echo@tcp://127.0.0.1:0"])
            try serverd.waitForListening(1)
            XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("w"))
            counts.append(threads(serverd))
            try serverd.stop()
        }
        XCTAssertEqual(counts[1] - counts[0], 2, "threads with 1 and 3 workers: \(counts)")
    }

    /// The reactors run the stream listeners' serve loops, and no thread waits beside each: with one reactor, three
    /// stream listeners run as many threads as one does (each added one before). Compared, not counted: a sanitizer's
    /// runtime has threads of its own.
    func testStreamListenersTakeNoThreadOfTheirOwn() throws {
        let dir = try TemporaryDirectory()
        var counts: [Int] = []
        for extra in [[], ["--listen", "daytime@tcp://[::1]:0", "--listen", "stamp@unix:\(dir.path("s.sock"))"]] {
            let serverd = try ServerdProcess(
                ["--model", "event", "--workers", "1", "--listen", "echo@tcp://127.0.0.1:0"] + extra, directory: dir)
            try serverd.waitForListening(1 + extra.count / 2)
            XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("w"))
            counts.append(threads(serverd))
            try serverd.stop()
        }
        XCTAssertEqual(counts[1], counts[0], "threads with one reactor and one, then three stream listeners: \(counts)")
    }

    /// Without `--workers`, one reactor per processor the process may run on: under `taskset -c 0` as many threads as
    /// with `--workers 1` (it was one per processor online).
    func testDefaultWorkersFollowTheProcessorsTheProcessMayUse() throws {
        guard sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 else { throw XCTSkip("one processor online: nothing to confine") }
        var counts: [Int] = []
        for (arguments, launcher) in [(["--workers", "1"], [String]()), ([], ["/usr/bin/taskset", "-c", "0"])] {
            let serverd = try ServerdProcess(
                ["--model", "event"] + arguments + ["--listen", "echo@tcp://127.0.0.1:0"], launcher: launcher)
            try serverd.waitForListening(1)
            XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("w"))
            counts.append(threads(serverd))
            try serverd.stop()
        }
        XCTAssertEqual(counts[1], counts[0], "threads with --workers 1, and confined to processor 0: \(counts)")
    }

    func testWorkersOutsideItsRangeIsAUsageError() throws {
        for value in ["0", "257", "many"] {
            let result = try ServerdProcess.run(["--model", "event", "--workers", value, "--listen", "echo@tcp://127.0.0.1:0"])
            XCTAssertEqual(result.status, 64, "--workers \(value): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("--workers"), result.stderr)
        }
    }

    func testLineServicesKeepPartialLinesAndDaytimeAndDiscardAnswerAsUsual() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "event", "--listen", "stamp@tcp://127.0.0.1:0", "--listen", "daytime@unix:\(dir.path("d.sock"))",
            "--listen", "discard@tcp://[::1]:0",
        ], directory: dir)
        try serverd.waitForListening(3)
        let stamp = try TestClient.connect(serverd.address(0))
        try stamp.send("ab")
        XCTAssertTrue(stamp.staysSilent(for: 0.2), "nothing before the LF")
        try stamp.send("c\r\nde")
        XCTAssertTrue(try stamp.receiveLine().hasSuffix("] abc\n"))
        try stamp.send("f\nlast")
        XCTAssertTrue(try stamp.receiveLine().hasSuffix("] def\n"))
        try stamp.finishSending()
        XCTAssertTrue(try stamp.receiveLine().hasSuffix("] last\n"), "a last line without LF is stamped at end of input")
        XCTAssertEqual(try stamp.receiveAll(), [])

        let daytime = try TestClient.connect("unix:\(dir.path("d.sock"))")
        let line = String(decoding: try daytime.receiveAll(), as: UTF8.self)
        XCTAssertTrue(line.hasSuffix("\r\n") && line.count > 20, line)

        let discard = try TestClient.connect(serverd.address(2))
        try discard.send([UInt8](repeating: 0x64, count: 200_000))
        try discard.finishSending()
        XCTAssertEqual(try discard.receiveAll(), [], "discard answers nothing and closes at end of input")
        try serverd.stop()
    }

    /// A client that sends without reading: once its replies fill the output bound, serverd stops reading it, so its
    /// sending stalls; everyone else is served, and its connection ends alone when it resets.
    func testClientThatDoesNotReadStallsOnlyItself() throws {
        let serverd = try ServerdProcess(["--model", "event", "--workers", "1", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        let bystander = try TestClient.connect(address)
        let flooder = try TestClient.connect(address)
        try flooder.socket.setTimeouts(receive: 1, send: 1)
        let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
        var sent = 0
        var stalled = false
        while !stalled && sent < 256 << 20 {
            do {
                try flooder.send(chunk)
                sent += chunk.count
            } catch {
                stalled = true
            }
        }
        XCTAssertTrue(stalled, "serverd read \(sent) bytes from a client that reads none of its replies")
        XCTAssertTrue(try bystander.echoes("still served"))
        var linger = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(flooder.socket.fileDescriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        flooder.close()
        XCTAssertTrue(try bystander.echoes("after the reset"))
        XCTAssertTrue(serverd.process.isRunning)
        bystander.close()
        try serverd.stop()
    }

    /// Each event-model connection gets its connection line, with the bytes both ways and how it ended, and its
    /// listener's counts in the status block, as under the other models.
    func testConnectionLinesAndCountsUnderEvent() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--model", "event", "--max-line", "4", "--listen", "echo@tcp://127.0.0.1:0",
            "--listen", "stamp@unix:\(dir.path("s.sock"))",
        ], directory: dir)
        try serverd.waitForListening(2)
        let echo = try TestClient.connect(serverd.address(0))
        try echo.send("four")
        try echo.finishSending()
        XCTAssertEqual(try echo.receiveAll(), Array("four".utf8))
        let long = try TestClient.connect("unix:\(dir.path("s.sock"))")
        try long.send("ok\ntoo long\n")
        XCTAssertTrue(try long.receiveLine().hasSuffix("] ok\n"))
        XCTAssertTrue(long.isClosedWithoutData())
        let log = try serverd.waitForLog("ended: max-line")
        let lines = log.split(separator: "\n").filter { $0.contains(" ended: ") }
        XCTAssertTrue(lines.contains { $0.contains("ended: client-close") && $0.contains(" bytes_in=4 bytes_out=4 ") }, log)
        XCTAssertTrue(lines.contains { $0.contains("ended: max-line") && $0.contains(" peer_uid=\(getuid()) ") }, log)
        var sent = 0
        let block = try serverd.waitFor { () -> String? in
            sent += 1
            serverd.send(SIGUSR1)
            let text = try serverd.waitForLog("status: ", count: sent)
            let block = text.components(separatedBy: "status: ").last ?? ""
            return block.hasPrefix("2 listeners, 0 active connections, 2 total") ? block : nil
        }
        XCTAssertTrue(block.contains("echo@\(serverd.address(0)): model event, active 0, total 1, denied 0, limited 0, bytes in 4 out 4"), block)
        try serverd.stop()
    }

    /// A thousand idle connections are held on two reactor threads with a few KiB each, stay open through a
    /// reload, are served while serverd drains, and let it exit once they close.
    func testAThousandIdleConnectionsSurviveAReloadAndDrain() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            model = "event"
            workers = 2
            drain-timeout = 60
            listen = ["echo@tcp://127.0.0.1:0"]
            """)
        let serverd = try ServerdProcess(["--config", config], directory: dir)
        try serverd.waitForListening(1)
        let address = serverd.address(0)
        XCTAssertTrue(try TestClient.connect(address).echoes("warm"))
        let threadsBefore = threads(serverd)
        let memoryBefore = residentKiB(serverd)
        var clients: [TestClient] = []
        defer { clients.forEach { $0.close() } }
        for _ in 0..<1000 { clients.append(try TestClient.connect(address)) }
        // A round trip on each: every connection has been taken and served once.
        for (index, client) in clients.enumerated() {
            XCTAssertTrue(try client.echoes("\(index)"), "connection \(index)")
        }
        XCTAssertEqual(threads(serverd), threadsBefore, "no thread per connection")
        // The issue's bound; a sanitizer's shadow memory (Stress/sanitized-test.sh sets its options) adds more.
        let environment = ProcessInfo.processInfo.environment
        if environment["TSAN_OPTIONS"] == nil && environment["ASAN_OPTIONS"] == nil {
            let perConnection = Double(residentKiB(serverd) - memoryBefore) / 1000
            XCTAssertLessThanOrEqual(perConnection, 4, "resident KiB per idle connection")
        }

        serverd.send(SIGHUP)
        try serverd.waitForLog("reloaded: 1 kept")
        for (index, client) in clients.enumerated() where index.isMultiple(of: 10) {
            XCTAssertTrue(try client.echoes("after reload \(index)"), "connection \(index) after the reload")
        }

        serverd.send(SIGTERM)
        try serverd.waitForLog("stopping")
        _ = try serverd.waitFor { connectionIsRefused(address) ? true : nil }
        for (index, client) in clients.enumerated() where index.isMultiple(of: 10) {
            XCTAssertTrue(try client.echoes("draining \(index)"), "connection \(index) while draining")
        }
        XCTAssertTrue(serverd.process.isRunning, "draining while connections are open")
        clients.forEach { $0.close() }
        clients = []
        XCTAssertEqual(try serverd.waitForExit(timeout: 30), 0, serverd.stderr)
    }
}
