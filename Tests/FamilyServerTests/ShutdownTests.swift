import FamilyServer
import Glibc
import XCTest

/// Calls `shutdown()` from inside the handler, then replies.
private final class ShutdownHandler: StreamRequestHandler {
    override func handle() throws {
        _ = try rfile.readline()
        server.shutdown()
        try wfile.write("shutdown returned\n")
    }
}

/// Logs "started", waits for a line from the client, logs "finished", echoes the line.
private final class GateHandler: StreamRequestHandler {
    override func handle() throws {
        let log = (server as! GateServer).log!
        log.append("started")
        let line = try rfile.readline()
        log.append("finished")
        try wfile.write(line)
    }
}

private final class GateServer: StreamServer, @unchecked Sendable {
    var log: LogFile!
}

/// `shutdown()`: from inside a handler, before the loop starts, with a long poll interval, and
/// restarting the loop; `serverClose()` waiting for running requests or not.
final class ShutdownTests: FamilyServerTestCase {
    // MARK: - shutdown() from inside a handler

    private func checkShutdownFromHandler(_ model: TestModel, stopsTheServer: Bool) throws {
        let server = try StreamServer(address: address(.ipv4, .stream), handler: ShutdownHandler.self, model: model.make())
        let thread = try serving(server) {
            let reply = try Client.exchange(server.serverAddress, Array("stop\n".utf8))
            try expect(reply == Array("shutdown returned\n".utf8), "\(model): replied \(reply)")
        }
        defer {
            server.shutdown()
            thread.join()
            server.serverClose()
        }
        if stopsTheServer {
            XCTAssertTrue(thread.join(), "\(model): serveForever did not return after shutdown() in a handler")
        }
    }

    func testShutdownFromInsideASerialHandler() throws {
        try checkShutdownFromHandler(.serial, stopsTheServer: true)
    }

    func testShutdownFromInsideAThreadingHandler() throws {
        try checkShutdownFromHandler(.threading, stopsTheServer: true)
    }

    /// In a forked child, `shutdown()` returns (the child shares no memory with the serve loop, so
    /// it cannot stop it); the parent is stopped from outside.
    func testShutdownFromInsideAForkedHandler() throws {
        try checkShutdownFromHandler(.forking, stopsTheServer: false)
    }

    // MARK: - Waking the loop

    /// The loop sleeps in poll with the wake-up descriptor: a 10 s poll interval does not delay
    /// shutdown (generous bound: 5 s).
    func testServeForeverReturnsPromptlyAfterShutdown() throws {
        for model in TestModel.inThisRun {
            let server = try StreamServer(address: address(.unixPath, .stream), handler: StreamEchoHandler.self, model: model.make())
            defer { server.serverClose() }
            // After the client's round trip the loop is running and idle again.
            let thread = try serving(server, pollInterval: 10) { try streamEchoClient(server.serverAddress) }
            let start = MonotonicClock.seconds()
            server.shutdown()
            XCTAssertTrue(thread.join(timeout: 30))
            XCTAssertLessThan(MonotonicClock.seconds() - start, 5, "\(model)")
        }
    }

    /// Called while nothing serves, `shutdown()` returns at once and the next `serveForever`
    /// returns at once; the one after that serves again.
    func testShutdownBeforeServeForever() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { server.serverClose() }
        server.shutdown()
        let start = MonotonicClock.seconds()
        server.serveForever(pollInterval: 10)
        XCTAssertLessThan(MonotonicClock.seconds() - start, 5)
        try runServer(server) { try streamEchoClient($0) }
    }

    func testServeForeverCanBeRestarted() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self, model: ThreadingModel())
        defer { server.serverClose() }
        for _ in 0..<3 {
            let serving = try TestThread { server.serveForever(pollInterval: 0.01) }
            try streamEchoClient(server.serverAddress)
            server.shutdown()
            XCTAssertTrue(serving.join())
        }
    }

    /// `shutdown()` stops the loop but leaves the socket open: a pending connection is served by
    /// a later `handleRequest()`.
    func testShutdownDoesNotCloseTheSocket() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { server.serverClose() }
        let serving = try TestThread { server.serveForever(pollInterval: 0.01) }
        server.shutdown()
        XCTAssertTrue(serving.join())
        XCTAssertGreaterThanOrEqual(server.fileno, 0)
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("late\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), Array("late\n".utf8))
    }

    /// `shutdown()` from another thread ends a `handleRequest()` that waits without a timeout.
    func testShutdownWakesHandleRequest() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { server.serverClose() }
        let waiting = try TestThread { server.handleRequest() }
        usleep(50_000)
        server.shutdown()
        XCTAssertTrue(waiting.join())
    }

    // MARK: - serverClose() and running requests

    /// Starts a gated request with `handleRequest()` (on this thread, so that a forking model
    /// forks while no other thread runs) and closes the server on another thread.
    /// - Returns: the client (its request still waiting), the closing thread, the log.
    private func closeWhileARequestRuns(_ model: ProcessingModel) throws -> (Socket, TestThread, LogFile) {
        let log = LogFile(path: path("log"))
        let server = try GateServer(address: address(.unixPath, .stream), handler: GateHandler.self, model: model)
        server.log = log
        let client = try Client.connect(server.serverAddress)
        server.handleRequest()
        XCTAssertTrue(eventually { log.contents == "started\n" })
        let closing = try TestThread {
            server.serverClose()
            log.append("closed")
        }
        return (client, closing, log)
    }

    private func finish(_ client: Socket) throws {
        try client.sendAll(Array("go\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        XCTAssertEqual(try Client.readToEnd(client), Array("go\n".utf8))
        client.close()
    }

    func testServerCloseWaitsForRunningThreads() throws {
        let (client, closing, log) = try closeWhileARequestRuns(ThreadingModel())
        XCTAssertFalse(closing.join(timeout: 0.2), "serverClose returned while a request was running")
        try finish(client)
        XCTAssertTrue(closing.join())
        XCTAssertEqual(log.contents, "started\nfinished\nclosed\n")
    }

    func testServerCloseWaitsForChildren() throws {
        let model = ForkingModel()
        let (client, closing, log) = try closeWhileARequestRuns(model)
        XCTAssertFalse(closing.join(timeout: 0.2), "serverClose returned while a child was running")
        try finish(client)
        XCTAssertTrue(closing.join())
        XCTAssertEqual(log.contents, "started\nfinished\nclosed\n")
        XCTAssertEqual(model.activeChildren, [])
    }

    func testDaemonThreadsDoNotDelayServerClose() throws {
        let (client, closing, log) = try closeWhileARequestRuns(ThreadingModel(daemonThreads: true))
        XCTAssertTrue(closing.join(), "serverClose waited for a daemon thread")
        XCTAssertEqual(log.contents, "started\nclosed\n")
        try finish(client)
        XCTAssertTrue(eventually { log.contents == "started\nclosed\nfinished\n" })
    }
}
