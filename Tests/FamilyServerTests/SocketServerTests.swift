import FamilyServer
import Glibc
import XCTest

/// The port of CPython's `SocketServerTest` (Lib/test/test_socketserver.py): every server class in
/// every processing model serves echo round trips through `runServer`, on IPv4 and IPv6 for inet
/// and on a path and an abstract name for Unix sockets; plus shutdown of 20 servers, closing a
/// server that never served, 1,024 failed binds without a descriptor leak, and context clean-up.
final class SocketServerTests: FamilyServerTestCase {
    // MARK: - Stream servers

    private func checkStream(_ family: TestFamily, _ model: TestModel, file: StaticString = #filePath, line: UInt = #line) throws {
        if family == .ipv6 { try requireIPv6() }
        let server: BaseServer
        let address = address(family, .stream)
        switch family {
        case .ipv4, .ipv6: server = try TCPServer(address: address, handler: StreamEchoHandler.self, model: model.make())
        case .unixPath, .unixAbstract:
            server = try UnixStreamServer(address: address, handler: StreamEchoHandler.self, model: model.make())
        }
        XCTAssertEqual(server.socketType, .stream, file: file, line: line)
        XCTAssertEqual(server.addressFamily, address.family, file: file, line: line)
        try runServer(server, file: file, line: line) { try streamEchoClient($0) }
    }

    func testTCPServer() throws { try checkStream(.ipv4, .serial) }
    func testThreadingTCPServer() throws { try checkStream(.ipv4, .threading) }
    func testForkingTCPServer() throws { try checkStream(.ipv4, .forking) }
    func testTCPServerIPv6() throws { try checkStream(.ipv6, .serial) }
    func testThreadingTCPServerIPv6() throws { try checkStream(.ipv6, .threading) }
    func testForkingTCPServerIPv6() throws { try checkStream(.ipv6, .forking) }
    func testUnixStreamServer() throws { try checkStream(.unixPath, .serial) }
    func testThreadingUnixStreamServer() throws { try checkStream(.unixPath, .threading) }
    func testForkingUnixStreamServer() throws { try checkStream(.unixPath, .forking) }
    func testUnixStreamServerAbstract() throws { try checkStream(.unixAbstract, .serial) }
    func testThreadingUnixStreamServerAbstract() throws { try checkStream(.unixAbstract, .threading) }
    func testForkingUnixStreamServerAbstract() throws { try checkStream(.unixAbstract, .forking) }

    // MARK: - Datagram servers

    private func checkDatagram(_ family: TestFamily, _ model: TestModel, file: StaticString = #filePath, line: UInt = #line) throws {
        if family == .ipv6 { try requireIPv6() }
        let server: BaseServer
        let address = address(family, .datagram)
        switch family {
        case .ipv4, .ipv6: server = try UDPServer(address: address, handler: DatagramEchoHandler.self, model: model.make())
        case .unixPath, .unixAbstract:
            server = try UnixDatagramServer(address: address, handler: DatagramEchoHandler.self, model: model.make())
        }
        XCTAssertEqual(server.socketType, .datagram, file: file, line: line)
        XCTAssertEqual(server.addressFamily, address.family, file: file, line: line)
        try runServer(server, file: file, line: line) { try datagramEchoClient($0) }
    }

    func testUDPServer() throws { try checkDatagram(.ipv4, .serial) }
    func testThreadingUDPServer() throws { try checkDatagram(.ipv4, .threading) }
    func testForkingUDPServer() throws { try checkDatagram(.ipv4, .forking) }
    func testUDPServerIPv6() throws { try checkDatagram(.ipv6, .serial) }
    func testThreadingUDPServerIPv6() throws { try checkDatagram(.ipv6, .threading) }
    func testForkingUDPServerIPv6() throws { try checkDatagram(.ipv6, .forking) }
    func testUnixDatagramServer() throws { try checkDatagram(.unixPath, .serial) }
    func testThreadingUnixDatagramServer() throws { try checkDatagram(.unixPath, .threading) }
    func testForkingUnixDatagramServer() throws { try checkDatagram(.unixPath, .forking) }
    func testUnixDatagramServerAbstract() throws { try checkDatagram(.unixAbstract, .serial) }
    func testThreadingUnixDatagramServerAbstract() throws { try checkDatagram(.unixAbstract, .threading) }
    func testForkingUnixDatagramServerAbstract() throws { try checkDatagram(.unixAbstract, .forking) }

    // MARK: - Lifecycle

    /// bpo-2302: `shutdown()` always makes the other thread leave `serveForever`, even when it
    /// comes before the loop started.
    func testShutdown() throws {
        var running: [(TestThread, BaseServer)] = []
        for _ in 0..<20 {
            let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
            running.append((try TestThread { server.serveForever(pollInterval: 0.01) }, server))
            server.shutdown()
        }
        for (thread, server) in running {
            XCTAssertTrue(thread.join(), "serveForever of \(server.serverAddress) did not return")
            server.serverClose()
        }
    }

    /// A threading server that never served can be closed at once.
    func testCloseImmediately() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self, model: ThreadingModel())
        server.serverClose()
        XCTAssertEqual(server.fileno, -1)
    }

    /// bpo-22435: a failed bind closes the socket. 1,024 failures leave the descriptor count as it was.
    func testTCPServerBindLeak() throws {
        let occupant = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { occupant.serverClose() }
        let taken = occupant.serverAddress
        let before = Descriptors()
        for _ in 0..<1024 {
            do {
                _ = try TCPServer(address: taken, handler: StreamEchoHandler.self)
                XCTFail("a second server bound \(taken)")
                return
            } catch let error as SocketError {
                XCTAssertEqual(error.syscall, "bind")
                XCTAssertEqual(error.errno, EADDRINUSE)
            }
        }
        XCTAssertTrue(Descriptors().isWithin(before), "\(Descriptors()), \(before) before: \(openDescriptors())")
    }

    /// The equivalent of `with TCPServer(...) as server`: the socket is closed after the block.
    func testContextManager() throws {
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        let fd = server.closing { server in server.fileno }
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(server.fileno, -1)
    }

    /// The block ending with an error closes the server too, and removes the socket file it made.
    func testContextManagerClosesWhenBodyThrows() throws {
        let server = try UnixStreamServer(address: address(.unixPath, .stream), handler: StreamEchoHandler.self)
        let socketPath = try XCTUnwrap(server.serverAddress.path)
        XCTAssertEqual(fileType(socketPath), S_IFSOCK)
        XCTAssertThrowsError(try server.closing { _ in throw DeliberateError() })
        XCTAssertEqual(server.fileno, -1)
        XCTAssertNil(fileType(socketPath))
    }

    /// bpo-1540386: a forking server reaps only its own children, never another child of the process.
    func testForkingServerLeavesForeignChildren() throws {
        let foreign = fork()
        if foreign == 0 {
            // CPython's simple_subprocess: a child that exits 72 and that only the test may reap.
            _exit(72)
        }
        XCTAssertGreaterThan(foreign, 0)
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self, model: ForkingModel())
        try runServer(server) { try streamEchoClient($0) }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(foreign, &status, 0), foreign, "the server reaped a child it did not fork")
        XCTAssertEqual((status >> 8) & 0xff, 72)
    }
}
