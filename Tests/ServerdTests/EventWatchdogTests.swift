import FamilyServer
import Foundation
import Glibc
import Synchronization
import XCTest

/// The watchdog under `--model event`: `WATCHDOG=1` goes on while the reactors serve and while they idle, and stops
/// while a reactor is stuck in a handler, here blocked writing its connection line to a log that nobody reads.
final class EventWatchdogTests: XCTestCase {
    private func pings(_ messages: [NotifySink.Message]) -> [NotifySink.Message] {
        messages.filter { $0["WATCHDOG"] == "1" }
    }

    /// Reads the sink until `count` more pings arrived, for at most `timeout` seconds; returns the pings.
    private func awaitPings(_ sink: NotifySink, count: Int, timeout: Double = 10) throws -> [NotifySink.Message] {
        var received: [NotifySink.Message] = []
        let deadline = MonotonicClock.seconds() + timeout
        while received.count < count, case let left = deadline - MonotonicClock.seconds(), left > 0 {
            if let message = try sink.receive(timeout: min(left, 0.1)), message["WATCHDOG"] == "1" {
                received.append(message)
            }
        }
        return received
    }

    func testPingsGoOnWhileTheReactorsServeAndIdle() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(abstractTag: "event-watchdog-healthy")
        let socketPath = directory.path("echo.sock")
        let serverd = try ServerdProcess(
            ["--model", "event", "--workers", "2", "--listen", "echo@unix:\(socketPath)"], directory: directory,
            environment: sink.environment.merging(["WATCHDOG_USEC": "2000000"]) { $1 })
        try sink.next("READY", "1")
        XCTAssertGreaterThanOrEqual(try awaitPings(sink, count: 3).count, 3, "pings while idle: \(sink.messages)")

        // Echo exchanges on two connections for up to 6 s, until three pings came meanwhile (one a second is due); the
        // reactor without connections is woken for its heartbeat.
        let clients = try (0..<2).map { _ in try TestClient.connect("unix:\(socketPath)") }
        var whileServing = 0
        var round = 0
        let deadline = MonotonicClock.seconds() + 6
        while whileServing < 3 && round < 100_000 && MonotonicClock.seconds() < deadline {
            for client in clients { XCTAssertTrue(try client.echoes("round \(round)\n")) }
            if try sink.receive(timeout: 0)?["WATCHDOG"] == "1" { whileServing += 1 }
            round += 1
        }
        XCTAssertGreaterThanOrEqual(whileServing, 3, "pings while serving: \(sink.messages)")
        clients.forEach { $0.close() }
        XCTAssertGreaterThanOrEqual(try awaitPings(sink, count: 2).count, 2, "pings when idle again")
        try serverd.stop()
    }

    func testAReactorStuckInAHandlerStopsThePingsUntilItReturns() throws {
        let directory = try TemporaryDirectory()
        let sink = try NotifySink(abstractTag: "event-watchdog-stuck")
        let socketPath = directory.path("echo.sock")
        let logPath = directory.path("log.fifo")
        XCTAssertEqual(mkfifo(logPath, 0o600), 0, "mkfifo \(logPath): errno \(errno)")
        // The log's reader: open (non-blocking, so serverd's open for writing does not wait for it), then not read
        // until the reactor is to be freed. With the pipe full, the reactor blocks writing a connection line.
        let log = open(logPath, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(log, 0, "open \(logPath): errno \(errno)")
        defer { close(log) }
        let serverd = try ServerdProcess(
            ["--model", "event", "--workers", "1", "--log-file", logPath, "--listen", "echo@unix:\(socketPath)"],
            directory: directory, environment: sink.environment.merging(["WATCHDOG_USEC": "2000000"]) { $1 })
        try sink.next("READY", "1")
        XCTAssertGreaterThanOrEqual(try awaitPings(sink, count: 2).count, 2, "pings while healthy: \(sink.messages)")

        // Connections one after the other, each logging a line when it ends, until one gets no echo within 2 s:
        // the reactor is blocked in write(2) on the full pipe (64 KiB, a few hundred lines).
        var stuck = false
        for index in 0..<5_000 {
            let client = try TestClient.connect("unix:\(socketPath)", timeout: 2)
            defer { client.close() }
            try client.send("line \(index)\n")
            guard try Poll.readable([client.socket.fileDescriptor], timeout: 2)[0] else {
                stuck = true
                break
            }
            XCTAssertEqual(try client.receiveLine(), "line \(index)\n")
        }
        XCTAssertTrue(stuck, "the reactor never blocked on the log")
        // A ping already due when it blocked may still go; after that, none over three intervals.
        _ = try sink.collect(for: 1.5)
        let whileStuck = pings(try sink.collect(for: 3))
        XCTAssertEqual(whileStuck.count, 0, "pings while a reactor is stuck: \(whileStuck)")

        // Reading the log frees the reactor, and the pings resume.
        let reader = FIFODrain(log)
        defer { reader.stop() }
        XCTAssertGreaterThanOrEqual(try awaitPings(sink, count: 2).count, 2, "pings once the reactor is free again")
        try serverd.stop()
    }
}

/// Reads a pipe on a thread of its own until stopped, so that a writer blocked on it goes on.
private final class FIFODrain: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    init(_ descriptor: Int32) {
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !stopping.load(ordering: .acquiring) {
                guard (try? Poll.readable([descriptor], timeout: 0.05)[0]) == true,
                    buffer.withUnsafeMutableBytes({ read(descriptor, $0.baseAddress, $0.count) }) > 0
                else {
                    usleep(10_000)  // nothing yet, or the writer is gone
                    continue
                }
            }
            done.signal()
        }.start()
    }

    /// Ends the thread and waits for it.
    func stop() {
        stopping.store(true, ordering: .releasing)
        done.wait()
    }
}
