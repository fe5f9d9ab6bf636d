import FamilyServer
import Glibc
import XCTest

/// Echoes one line prefixed with the client's address.
private final class WhoHandler: StreamRequestHandler {
    override func handle() throws {
        try wfile.write("\(clientAddress) \(String(decoding: try rfile.readline(), as: UTF8.self))")
    }
}

private final class DatagramWhoHandler: DatagramRequestHandler {
    override func handle() throws {
        try wfile.write("\(clientAddress) \(String(decoding: try rfile.readToEnd(), as: UTF8.self))")
    }
}

/// What the families do beyond echo: dual-stack `[::]`, the IPv4-only wildcard, 60,000-byte
/// datagrams over UDP and Unix datagram sockets, and address conflicts.
final class FamilyTests: FamilyServerTestCase {
    // MARK: - Wildcards

    /// `tcp://*:P` binds `[::]` dual-stack: IPv4 clients are served, seen as IPv4-mapped addresses.
    func testDualStackWildcardServesIPv4OverTCP() throws {
        try requireIPv6()
        let server = try TCPServer(address: try SocketAddress(parsing: "tcp://*:0"), handler: WhoHandler.self, model: ThreadingModel())
        XCTAssertEqual(server.addressFamily, AF_INET6)
        XCTAssertEqual(try server.socket.intOption(level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY), 0)
        let port = try XCTUnwrap(server.serverAddress.port)
        XCTAssertEqual(server.serverAddress.description, "tcp://[::]:\(port)")
        try runServer(server) { _ in
            let v4 = try SocketAddress(parsing: "tcp://127.0.0.1:\(port)")
            let fromV4 = String(decoding: try Client.exchange(v4, Array("hi\n".utf8)), as: UTF8.self)
            XCTAssertTrue(fromV4.hasPrefix("tcp://[::ffff:127.0.0.1]:") && fromV4.hasSuffix(" hi\n"), fromV4)
            let v6 = try SocketAddress(parsing: "tcp://[::1]:\(port)")
            XCTAssertTrue(String(decoding: try Client.exchange(v6, Array("hi\n".utf8)), as: UTF8.self).hasPrefix("tcp://[::1]:"))
        }
    }

    func testDualStackWildcardServesIPv4OverUDP() throws {
        try requireIPv6()
        let server = try UDPServer(address: try SocketAddress(parsing: "udp://[::]:0"), handler: DatagramWhoHandler.self)
        let port = try XCTUnwrap(server.serverAddress.port)
        try runServer(server) { _ in
            let v4 = try SocketAddress(parsing: "udp://127.0.0.1:\(port)")
            let reply = String(decoding: try Client.datagramExchange(v4, Array("hi".utf8), from: nil), as: UTF8.self)
            XCTAssertTrue(reply.hasPrefix("udp://[::ffff:127.0.0.1]:"), reply)
            XCTAssertTrue(reply.hasSuffix(" hi"), reply)
        }
    }

    /// `tcp://0.0.0.0:P` is IPv4 only.
    func testIPv4WildcardIsAnIPv4Socket() throws {
        let server = try TCPServer(address: try SocketAddress(parsing: "tcp://0.0.0.0:0"), handler: WhoHandler.self)
        XCTAssertEqual(server.addressFamily, AF_INET)
        try runServer(server) { address in
            XCTAssertEqual(address.ip, IPAddress(numeric: "127.0.0.1"))
            let reply = String(decoding: try Client.exchange(address, Array("hi\n".utf8)), as: UTF8.self)
            XCTAssertTrue(reply.hasPrefix("tcp://127.0.0.1:"), reply)
        }
    }

    // MARK: - Large datagrams

    private func checkLargeDatagram(_ family: TestFamily, file: StaticString = #filePath, line: UInt = #line) throws {
        let server = try DatagramServer(address: address(family, .datagram), handler: DatagramEchoHandler.self)
        let payload = (0..<60_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try runServer(server, file: file, line: line) { address in
            let reply = try Client.datagramExchange(address, payload, from: clientAddress(for: address))
            XCTAssertEqual(reply.count, payload.count, file: file, line: line)
            XCTAssertTrue(reply == payload, "the reply differs from the 60,000 bytes sent", file: file, line: line)
        }
    }

    func testLargeDatagramOverUDP() throws { try checkLargeDatagram(.ipv4) }
    func testLargeDatagramOverUDPv6() throws {
        try requireIPv6()
        try checkLargeDatagram(.ipv6)
    }
    func testLargeDatagramOverUnixgram() throws { try checkLargeDatagram(.unixPath) }
    func testLargeDatagramOverAbstractUnixgram() throws { try checkLargeDatagram(.unixAbstract) }

    /// A datagram longer than `maxPacketSize` reaches the handler cut to that size.
    func testDatagramLongerThanMaxPacketSizeIsTruncated() throws {
        let server = try DatagramServer(address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        server.maxPacketSize = 1000
        let client = try Client.datagramSocket(for: server.serverAddress)
        defer { client.close() }
        try client.sendDatagram([UInt8](repeating: 7, count: 5000), to: server.serverAddress)
        server.handleRequest()
        XCTAssertEqual(try Client.receiveDatagram(client), [UInt8](repeating: 7, count: 1000))
    }

    // MARK: - Address conflicts

    func testSecondTCPServerOnTheSamePortIsAddressInUse() throws {
        let first = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { first.serverClose() }
        XCTAssertThrowsError(try TCPServer(address: first.serverAddress, handler: StreamEchoHandler.self)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE)
        }
    }

    /// SO_REUSEADDR lets two UDP sockets share a port on Linux; a second server must not.
    func testSecondUDPServerOnTheSamePortIsAddressInUse() throws {
        let first = try UDPServer(address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self)
        defer { first.serverClose() }
        XCTAssertThrowsError(try UDPServer(address: first.serverAddress, handler: DatagramEchoHandler.self)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE)
        }
    }

    func testSecondAbstractServerIsAddressInUse() throws {
        for transport in [SocketAddress.Transport.stream, .datagram] {
            let first = try makeServer(.unixAbstract, transport, .serial)
            defer { first.serverClose() }
            XCTAssertThrowsError(try makeServer(.unixAbstract, transport, .serial, reusing: first.serverAddress)) { error in
                XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE)
            }
        }
    }

    /// A restarted TCP server binds its port at once although the last connection lingers in
    /// TIME_WAIT (SO_REUSEADDR, on by default for stream sockets).
    func testRestartedTCPServerRebindsItsPort() throws {
        let first = try TCPServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        let bound = first.serverAddress
        try runServer(first) { try streamEchoClient($0) }
        let second = try TCPServer(address: bound, handler: StreamEchoHandler.self)
        try runServer(second) { try streamEchoClient($0) }
    }
}

private extension FamilyServerTestCase {
    /// A server at `address` instead of a fresh one.
    func makeServer(_ family: TestFamily, _ transport: SocketAddress.Transport, _ model: TestModel, reusing address: SocketAddress) throws -> BaseServer {
        switch transport {
        case .stream: return try StreamServer(address: address, handler: StreamEchoHandler.self, model: model.make())
        case .datagram: return try DatagramServer(address: address, handler: DatagramEchoHandler.self, model: model.make())
        }
    }
}
