import FamilyServer
import Glibc
import XCTest

/// Logs "started" (to a file: forked children log too), waits for a line, echoes it.
private final class HeldHandler: StreamRequestHandler {
    override func handle() throws {
        (server as! HeldServer).log.append("started")
        try wfile.write(try rfile.readline())
    }
}

private final class HeldServer: StreamServer, @unchecked Sendable {
    var log: LogFile!
}

/// Records the peer's credentials of a Unix stream connection.
private final class PeerCredentialsHandler: StreamRequestHandler {
    override func handle() throws {
        let credentials = try connection.peerCredentials()
        record("pid=\(credentials.pid) uid=\(credentials.uid) gid=\(credentials.gid)")
    }
}

/// Records the SCM_CREDENTIALS that came with a datagram and replies.
private final class DatagramCredentialsHandler: DatagramRequestHandler {
    override func handle() throws {
        let credentials = datagram.credentials.map { "pid=\($0.pid) uid=\($0.uid) gid=\($0.gid)" } ?? "none"
        record(credentials)
        try wfile.write("ok")
    }
}

/// The processing models beyond CPython's tests: the capacity limit (clients wait in the backlog,
/// none is refused), idle threads that end by themselves, and peer credentials.
final class ProcessingModelTests: FamilyServerTestCase {
    /// Five clients, `limit` requests at once. The client side may run in a child process
    /// (forking model), so it checks by throwing.
    private func checkCapacity(_ model: ProcessingModel, limit: Int) throws {
        let log = LogFile(path: path("log"))
        let server = try HeldServer(address: address(.unixPath, .stream), handler: HeldHandler.self, model: model)
        server.log = log
        func started() -> Int { log.contents.split(separator: "\n").count }

        let thread = try serving(server) {
            let clients = try (0..<(limit + 3)).map { _ in try Client.connect(server.serverAddress) }
            defer { clients.forEach { $0.close() } }
            try expect(eventually { started() == limit }, "\(started()) requests started, expected \(limit)")
            usleep(100_000)
            try expect(started() == limit, "\(started()) requests ran at once, more than the capacity \(limit)")

            // Each request that finishes lets exactly one more in; every client is served in the end.
            for (index, client) in clients.enumerated() {
                try client.sendAll(Array("line \(index)\n".utf8))
                try client.shutdown(Int32(SHUT_WR))
                try expect(try Client.readToEnd(client) == Array("line \(index)\n".utf8), "client \(index) got no echo")
                let expected = min(clients.count, limit + index + 1)
                try expect(eventually { started() == expected }, "after \(index + 1) finished: \(started()) started, expected \(expected)")
            }
        }
        server.shutdown()
        XCTAssertTrue(thread.join())
        server.serverClose()
        XCTAssertEqual(model.activeRequests, 0)
    }

    func testThreadingMaxThreadsLimitsRequestsInFlight() throws {
        try checkCapacity(ThreadingModel(maxThreads: 2), limit: 2)
    }

    func testForkingMaxChildrenLimitsRequestsInFlight() throws {
        try checkCapacity(ForkingModel(maxChildren: 2), limit: 2)
    }

    /// A parked worker that gets no new request within `idleThreadTimeout` ends, server still open.
    func testIdleThreadsEnd() throws {
        let model = ThreadingModel(idleThreadTimeout: 0.05)
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self, model: model)
        defer { server.serverClose() }
        let threadsBefore = threadCount()
        for _ in 0..<5 {
            let client = try Client.connect(server.serverAddress)
            try client.sendAll(Array("x\n".utf8))
            try client.shutdown(Int32(SHUT_WR))
            server.handleRequest()
            XCTAssertEqual(try Client.readToEnd(client), Array("x\n".utf8))
            client.close()
        }
        XCTAssertTrue(eventually { model.threadCount == 0 })
        XCTAssertTrue(eventually { threadCount() <= threadsBefore })
        XCTAssertGreaterThanOrEqual(server.fileno, 0)
    }

    func testStreamPeerCredentials() throws {
        let server = try RecordingStreamServer(address: address(.unixPath, .stream), handler: PeerCredentialsHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), [])
        XCTAssertEqual(server.events.all, ["pid=\(getpid()) uid=\(getuid()) gid=\(getgid())"])
    }

    /// On a Unix socket every datagram carries its sender's credentials, from a bound sender
    /// (which gets its reply) and from an unbound one (which cannot be answered).
    func testDatagramCredentials() throws {
        for family in [TestFamily.unixPath, .unixAbstract] {
            let server = try RecordingDatagramServer(address: address(family, .datagram), handler: DatagramCredentialsHandler.self)
            defer { server.serverClose() }
            let bound = try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress(for: server.serverAddress))
            defer { bound.close() }
            try bound.sendDatagram(Array("who".utf8), to: server.serverAddress)
            server.handleRequest()
            XCTAssertEqual(try Client.receiveDatagram(bound), Array("ok".utf8))
            let unbound = try Client.datagramSocket(for: server.serverAddress)
            defer { unbound.close() }
            try unbound.sendDatagram(Array("who".utf8), to: server.serverAddress)
            server.handleRequest()
            XCTAssertEqual(server.events.all, Array(repeating: "pid=\(getpid()) uid=\(getuid()) gid=\(getgid())", count: 2))
        }
    }
}
