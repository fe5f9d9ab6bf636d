import FamilyServer
import FamilyServerLifecycle
import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import XCTest

/// Echoes lines until the client ends its side, then records that it finished, if it echoed
/// anything (a probe that connects and closes is not counted).
final class RecordingLineEcho: StreamRequestHandler {
    static let finished = Atomic<Int>(0)

    override func handle() throws {
        var echoed = false
        while true {
            let line = try rfile.readline()
            if line.isEmpty { break }
            _ = try wfile.write(line)
            echoed = true
        }
        if echoed { Self.finished.add(1, ordering: .sequentiallyConsistent) }
    }
}

/// Sends every datagram back.
final class DatagramEcho: DatagramRequestHandler {
    override func handle() throws { _ = try wfile.write(try rfile.readToEnd()) }
}

/// ``ServerService`` and the async `serve` / `shutdownAndDrain` of any server, over real sockets.
final class ServerServiceTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch.remove() }

    /// Graceful shutdown with a connection in flight: the socket closes at once (new connections are
    /// refused), the open connection is still served, and `run()` returns only once its handler has
    /// finished.
    func testGracefulShutdownRefusesNewConnectionsAndDrainsTheOpenOne() async throws {
        let server = try StreamServer(
            address: scratch.socketAddress("drain.sock"), handler: RecordingLineEcho.self, model: ThreadingModel())
        let address = server.serverAddress
        let group = ServiceGroup(services: [ServerService(server, pollInterval: 0.01)], logger: Logger(label: "test"))
        let running = Task { try await group.run() }

        let client = try BlockingClient(address)
        try client.send("one\n")
        XCTAssertEqual(try client.receiveText(like: "one\n"), "one\n")
        let finishedBefore = RecordingLineEcho.finished.load(ordering: .sequentiallyConsistent)

        await group.triggerGracefulShutdown()
        try await eventually("new connections to \(address) refused") { connectionIsRefused(address) }
        try client.send("two\n")
        XCTAssertEqual(try client.receiveText(like: "two\n"), "two\n", "the open connection is still served")

        try client.endSending()
        try await running.value
        XCTAssertEqual(
            RecordingLineEcho.finished.load(ordering: .sequentiallyConsistent), finishedBefore + 1,
            "run() returned after the request in flight ended")
        XCTAssertTrue(try client.receivesEndOfStream())
        XCTAssertEqual(server.fileno, -1, "the server socket is closed")
        client.close()
    }

    /// A datagram server runs as a service too: it answers until graceful shutdown, then its
    /// socket is closed.
    func testADatagramServerStopsOnGracefulShutdown() async throws {
        let server = try DatagramServer(
            address: SocketAddress(.datagram, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0)), handler: DatagramEcho.self)
        let group = ServiceGroup(services: [ServerService(server, pollInterval: 0.01)], logger: Logger(label: "test"))
        let running = Task { try await group.run() }

        let client = try Socket(family: AF_INET, transport: .datagram)
        defer { client.close() }
        try client.setReceiveTimeout(10)
        try client.sendDatagram(Array("ping".utf8), to: server.serverAddress)
        let reply = try client.receiveDatagram(maxSize: 64)
        XCTAssertEqual(reply.map { String(decoding: $0.bytes, as: UTF8.self) }, "ping")

        await group.triggerGracefulShutdown()
        try await running.value
        XCTAssertEqual(server.fileno, -1, "the datagram socket is closed")
    }

    /// Cancelling the task that runs the service stops an idle server and closes it.
    func testCancellationStopsTheService() async throws {
        let server = try StreamServer(address: loopbackIPv4, handler: RecordingLineEcho.self, model: ThreadingModel())
        let address = server.serverAddress
        let running = Task { try await ServerService(server, pollInterval: 0.01).run() }
        let client = try BlockingClient(address)  // served: the loop runs
        try client.send("ping\n")
        XCTAssertEqual(try client.receiveText(like: "ping\n"), "ping\n")
        try client.endSending()
        XCTAssertTrue(try client.receivesEndOfStream())
        client.close()

        running.cancel()
        try await running.value
        XCTAssertEqual(server.fileno, -1)
        XCTAssertTrue(connectionIsRefused(address))
    }

    /// `serve()` returns once `shutdown()` is called from elsewhere; `shutdownAndDrain()` then
    /// closes the server, and is idempotent.
    func testServeReturnsOnShutdownAndDrainCloses() async throws {
        let server = try StreamServer(
            address: scratch.socketAddress("serve.sock"), handler: RecordingLineEcho.self, model: SerialModel())
        let address = server.serverAddress
        let serving = Task { try await server.serve(pollInterval: 0.01) }
        let client = try BlockingClient(address)
        try client.send("x\n")
        XCTAssertEqual(try client.receiveText(like: "x\n"), "x\n")
        try client.endSending()
        XCTAssertTrue(try client.receivesEndOfStream())
        client.close()

        server.shutdown()
        try await serving.value
        XCTAssertNotEqual(server.fileno, -1, "serve() leaves the socket open")
        try await server.shutdownAndDrain()
        try await server.shutdownAndDrain()
        XCTAssertEqual(server.fileno, -1)
        XCTAssertTrue(connectionIsRefused(address))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(scratch.path)/serve.sock"), "socket file removed")
    }

    /// A server runs once: running its service again fails at once, naming the address.
    func testRunningAClosedServerFails() async throws {
        let server = try StreamServer(address: loopbackIPv4, handler: RecordingLineEcho.self)
        let running = Task { try await ServerService(server, pollInterval: 0.01).run() }
        running.cancel()
        try await running.value
        do {
            try await ServerService(server).run()
            XCTFail("a closed server ran again")
        } catch let error as SocketError {
            XCTAssertEqual(error.errno, EBADF)
            XCTAssertTrue(error.description.contains("\(server.serverAddress)"), error.description)
        }
    }

    /// A task cancelled before its serve loop even started still returns (the request to stop is
    /// not lost).
    func testServeInACancelledTaskReturns() async throws {
        let server = try StreamServer(address: loopbackIPv4, handler: RecordingLineEcho.self)
        let serving = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await server.serve(pollInterval: 0.01)
        }
        try await serving.value
        try await server.shutdownAndDrain()
        XCTAssertEqual(server.fileno, -1)
    }
}
