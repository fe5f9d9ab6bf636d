import FamilyServer
import Glibc
import Synchronization
import XCTest

/// Set by the SIGUSR1 handler of `testWrite`.
private let interrupted = Atomic<Bool>(false)

/// What the handler of `testWrite` saw, for the test to check afterwards.
private final class WriterRecord: Sendable {
    let sent1 = Atomic<Int>(-1)
    let sent2 = Atomic<Int>(-1)
    let received = Mutex<[UInt8]>([])
}

/// What the client of `testWrite` saw.
private final class ClientRecord: Sendable {
    let response1 = Mutex<[UInt8]>([])
    let received2 = Atomic<Int>(-1)
    let failure = Mutex<String?>(nil)
}

/// Sixteen MiB, more than any socket buffer holds: the write blocks and is interrupted.
private let bigChunkSize = 16 * 1024 * 1024

private final class WriterTestServer: StreamServer, @unchecked Sendable {
    let record = WriterRecord()
}

/// CPython's `test_write` handler.
private final class WriterHandler: StreamRequestHandler {
    override func handle() throws {
        let record = (server as! WriterTestServer).record
        record.sent1.store(try wfile.write(Array("write data\n".utf8)), ordering: .relaxed)
        // Sent at once, without flush(): otherwise the client never answers.
        let line = try rfile.readline()
        record.received.withLock { $0 = line }
        record.sent2.store(try wfile.write([UInt8](repeating: 0, count: bigChunkSize)), ordering: .relaxed)
    }
}

/// Writes a line, then waits for the client's go-ahead before finishing.
private final class HoldingHandler: StreamRequestHandler {
    override func handle() throws {
        try wfile.write("before finish\n")
        _ = try rfile.readline()
    }
}

/// The port of CPython's `SocketWriterTest`: a stream handler's `wfile` writes straight through
/// to the request's socket, returns the byte count, and a large write interrupted by signals is
/// neither truncated nor failed.
final class SocketWriterTests: FamilyServerTestCase {
    /// `wfile` is unbuffered by default and writes to the request's connection: the client reads
    /// what the handler wrote while the handler is still running.
    func testBasics() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: HoldingHandler.self, model: ThreadingModel())
        let serving = try TestThread { server.serveForever(pollInterval: 0.01) }
        defer {
            server.shutdown()
            serving.join()
            server.serverClose()
        }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        XCTAssertEqual(try Client.readLine(client), Array("before finish\n".utf8))
        try client.sendAll(Array("go\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        XCTAssertEqual(try Client.readToEnd(client), [])
    }

    func testWrite() throws {
        // A SIGUSR1 handler without SA_RESTART, so that the blocked send() fails with EINTR.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interrupted.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        var original = sigaction()
        XCTAssertEqual(sigaction(SIGUSR1, &action, &original), 0)
        defer { sigaction(SIGUSR1, &original, nil) }
        interrupted.store(false, ordering: .relaxed)

        let server = try WriterTestServer(address: address(.ipv4, .stream), handler: WriterHandler.self)
        defer { server.serverClose() }
        let mainThread = pthread_self()
        let address = server.serverAddress
        let seen = ClientRecord()
        let client = try TestThread {
            do {
                let socket = try Client.connect(address)
                defer { socket.close() }
                let line = try Client.readLine(socket)
                seen.response1.withLock { $0 = line }
                try socket.sendAll(Array("client response\n".utf8))
                _ = try Client.read(socket, count: 100)
                // The handler should now be blocked in send(). Signal its thread until the
                // handler ran once; other signals could land at an inconvenient moment.
                while !interrupted.load(ordering: .relaxed) {
                    pthread_kill(mainThread, SIGUSR1)
                    usleep(100_000)
                }
                seen.received2.store(try Client.readToEnd(socket).count, ordering: .relaxed)
            } catch {
                seen.failure.withLock { $0 = "\(error)" }
            }
        }
        server.handleRequest()
        XCTAssertTrue(client.join(timeout: 60))
        XCTAssertNil(seen.failure.withLock { $0 })
        XCTAssertTrue(interrupted.load(ordering: .relaxed))
        XCTAssertEqual(server.record.sent1.load(ordering: .relaxed), "write data\n".utf8.count)
        XCTAssertEqual(seen.response1.withLock { $0 }, Array("write data\n".utf8))
        XCTAssertEqual(server.record.received.withLock { $0 }, Array("client response\n".utf8))
        XCTAssertEqual(server.record.sent2.load(ordering: .relaxed), bigChunkSize)
        XCTAssertEqual(seen.received2.load(ordering: .relaxed), bigChunkSize - 100)
    }
}
