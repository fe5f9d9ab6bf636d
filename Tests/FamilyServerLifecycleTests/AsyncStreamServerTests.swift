import FamilyServer
import FamilyServerLifecycle
import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import XCTest

/// Counts the connections it accepts and the passes of its accept loop.
final class CountingAsyncStreamServer: AsyncStreamServer, @unchecked Sendable {
    let accepted = Atomic<Int>(0)
    let passes = Atomic<Int>(0)

    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool {
        accepted.add(1, ordering: .sequentiallyConsistent)
        return super.verifyRequest(request, clientAddress: clientAddress)
    }

    override func serviceActions() {
        passes.add(1, ordering: .sequentiallyConsistent)
        super.serviceActions()
    }
}

/// ``AsyncStreamServer``: its connection sequence, backpressure, graceful shutdown, and the async
/// reads and writes of ``AsyncConnection``, over real sockets.
final class AsyncStreamServerTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch.remove() }

    /// Runs `server` in a task; returns the task.
    private func start(_ server: AsyncStreamServer) -> Task<Void, any Error> {
        Task { try await ServiceGroup(services: [server], logger: Logger(label: "test")).run() }
    }

    /// Echoes everything on `connection` until the peer ends its side.
    private static func echo(_ connection: AsyncConnection) async throws {
        while let bytes = try await connection.read() {
            try await connection.write(bytes)
        }
        connection.close()
    }

    /// Serves every connection of `server` with ``echo(_:)``, each in a task of its own, until the
    /// sequence ends and every connection is served.
    private static func echoEveryConnection(of server: AsyncStreamServer) async throws {
        try await withThrowingDiscardingTaskGroup { tasks in
            for try await connection in server.connections {
                tasks.addTask { try await echo(connection) }
            }
        }
    }

    /// One echoed exchange over IPv4, IPv6 (where the machine has it) and a Unix socket, each client
    /// served by a task of its own.
    func testConnectionsAreServedOverEveryFamily() async throws {
        var addresses = [loopbackIPv4, scratch.socketAddress("families.sock")]
        if hasIPv6Loopback() { addresses.append(loopbackIPv6) }
        for address in addresses {
            let server = try AsyncStreamServer(address: address)
            let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
            let running = Task { try await group.run() }
            let serving = Task { try await AsyncStreamServerTests.echoEveryConnection(of: server) }
            let clients = try (0..<3).map { _ in try BlockingClient(server.serverAddress) }
            for (index, client) in clients.enumerated() {
                try client.send("hello \(index) over \(address)\n")
            }
            for (index, client) in clients.enumerated() {
                let expected = "hello \(index) over \(address)\n"
                XCTAssertEqual(try client.receiveText(like: expected), expected)
                try client.endSending()
                XCTAssertTrue(try client.receivesEndOfStream(), "\(address): the server closed after the end")
                client.close()
            }
            await group.triggerGracefulShutdown()
            try await running.value
            try await serving.value
        }
    }

    /// With nobody taking connections, the accept loop stops at `bufferSize` and the rest wait in the
    /// kernel's backlog; taking them lets the loop go on, and every connection arrives.
    func testAFloodWaitsInTheBacklogBeyondTheBuffer() async throws {
        let server = try CountingAsyncStreamServer(address: loopbackIPv4, bufferSize: 2)
        let clients = try (0..<6).map { _ in try BlockingClient(server.serverAddress) }  // all in the backlog
        let running = start(server)

        try await eventually("the first two connections accepted") {
            server.accepted.load(ordering: .sequentiallyConsistent) == 2
        }
        // Two more passes of the loop: the pass that accepted is over, and the next found no room.
        let passes = server.passes.load(ordering: .sequentiallyConsistent)
        try await eventually("two more passes of the accept loop") {
            server.passes.load(ordering: .sequentiallyConsistent) >= passes + 2
        }
        XCTAssertEqual(server.accepted.load(ordering: .sequentiallyConsistent), 2, "no more than the buffer")
        XCTAssertTrue(server.isAtCapacity)

        var taken: [AsyncConnection] = []
        for try await connection in server.connections {
            taken.append(connection)
            if taken.count == clients.count { break }
        }
        XCTAssertEqual(server.accepted.load(ordering: .sequentiallyConsistent), 6)
        for connection in taken { connection.close() }
        for client in clients {
            XCTAssertTrue(try client.receivesEndOfStream())
            client.close()
        }
        running.cancel()
        try await running.value
    }

    /// Cancelling the task that takes connections ends the sequence (the one still buffered is taken
    /// first); connections that come afterwards are closed at once, not left waiting for a consumer
    /// that is gone.
    func testConnectionsAreClosedOnceTheConsumerIsCancelled() async throws {
        let server = try AsyncStreamServer(address: scratch.socketAddress("gone.sock"), bufferSize: 1)
        let running = start(server)
        let consumer = Task {
            for try await connection in server.connections {
                connection.close()
                try? await Task.sleep(nanoseconds: 3_600_000_000_000)  // busy until cancelled
            }
        }
        let first = try BlockingClient(server.serverAddress)
        XCTAssertTrue(try first.receivesEndOfStream(), "taken (and closed) by the consumer")
        first.close()
        let buffered = try BlockingClient(server.serverAddress)
        try await eventually("the second connection waits in the full buffer") { server.isAtCapacity }
        let later = try BlockingClient(server.serverAddress)

        consumer.cancel()
        try await consumer.value
        XCTAssertTrue(try buffered.receivesEndOfStream(), "the buffered connection is taken and closed")
        XCTAssertTrue(try later.receivesEndOfStream(), "a connection from the backlog is closed")
        let afterwards = try BlockingClient(server.serverAddress)
        XCTAssertTrue(try afterwards.receivesEndOfStream(), "a new connection is closed")
        for client in [buffered, later, afterwards] { client.close() }
        running.cancel()
        try await running.value
    }

    /// Graceful shutdown closes the server socket at once and ends the sequence, while a connection
    /// taken before is still served to its end.
    func testGracefulShutdownEndsTheSequenceAndKeepsTakenConnections() async throws {
        let server = try AsyncStreamServer(address: scratch.socketAddress("stop.sock"))
        let address = server.serverAddress
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        let client = try BlockingClient(address)
        var iterator = server.connections.makeAsyncIterator()
        let connection = try await iterator.next()
        let taken = try XCTUnwrap(connection)

        await group.triggerGracefulShutdown()
        try await running.value
        XCTAssertTrue(connectionIsRefused(address))
        let end = try await iterator.next()
        XCTAssertNil(end, "the sequence ends once the server stopped")

        try client.send("still here\n")
        let read = try await taken.read()
        XCTAssertEqual(read.map { String(decoding: $0, as: UTF8.self) }, "still here\n")
        try await taken.write(Array("and answered\n".utf8))
        XCTAssertEqual(try client.receiveText(like: "and answered\n"), "and answered\n")
        try client.endSending()
        let afterEnd = try await taken.read()
        XCTAssertNil(afterEnd, "nil at the end of the stream")
        taken.close()
        XCTAssertTrue(try client.receivesEndOfStream())
        client.close()
    }

    /// A read that waits for a silent peer ends when its task is cancelled: it throws
    /// `CancellationError`, and the peer sees the connection end.
    func testCancellingAWaitingReadEndsTheConnection() async throws {
        let server = try AsyncStreamServer(address: scratch.socketAddress("cancel.sock"))
        let running = start(server)
        let client = try BlockingClient(server.serverAddress)
        var iterator = server.connections.makeAsyncIterator()
        let connection = try await iterator.next()
        let taken = try XCTUnwrap(connection)

        let reading = Task { try await taken.read() }
        reading.cancel()
        do {
            let bytes = try await reading.value
            XCTFail("a cancelled read returned \(String(describing: bytes))")
        } catch is CancellationError {
        }
        XCTAssertTrue(try client.receivesEndOfStream())
        client.close()
        running.cancel()
        try await running.value
    }

    /// A write larger than the socket buffers waits (on its own thread) until the peer has read it
    /// all; nothing is lost or reordered.
    func testALargeWriteWaitsForTheReader() async throws {
        let server = try AsyncStreamServer(address: loopbackIPv4)
        let running = start(server)
        let client = try BlockingClient(server.serverAddress)
        var iterator = server.connections.makeAsyncIterator()
        let connection = try await iterator.next()
        let taken = try XCTUnwrap(connection)

        let payload = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }
        let writing = Task { try await taken.write(payload); taken.close() }
        let received = try await Task.detached { try client.receive(count: payload.count + 1) }.value
        try await writing.value
        XCTAssertEqual(received.count, payload.count)
        XCTAssertTrue(received == payload, "the bytes arrive whole and in order")
        client.close()
        running.cancel()
        try await running.value
    }
}
