@testable import FamilyServer
import CShims
import Glibc
import Synchronization
import XCTest

// In-process tests of what adoption builds on: classifying one descriptor (InheritedSocket), the
// error messages for a bad environment, the lookups, and the servers made from inherited sockets
// — ConnectionServer and BaseServer.serve(connection:) included. Descriptors here are ordinary
// sockets of this process; the LISTEN_* path itself is exercised in child processes by
// SystemdActivationTests.

/// What the recording handlers and servers below saw, in order.
private let systemdServerEvents = Mutex<[String]>([])

private func recordEvent(_ event: String) { systemdServerEvents.withLock { $0.append(event) } }

private func takeEvents() -> [String] { systemdServerEvents.withLock { events in defer { events = [] }; return events } }

/// Records that it ran, then echoes one line.
final class SystemdRecordingEchoHandler: StreamRequestHandler {
    override func handle() throws {
        recordEvent("handle \(clientAddress)")
        try wfile.write(try rfile.readline())
    }
}

/// Reads until the peer or the server ends the connection.
final class SystemdReadForeverHandler: StreamRequestHandler {
    override func handle() throws {
        recordEvent("reading")
        _ = try rfile.readToEnd()
        recordEvent("read ended")
    }
}

/// A connection server that refuses every client.
final class SystemdRefusingConnectionServer: ConnectionServer, @unchecked Sendable {
    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool {
        recordEvent("refused \(clientAddress)")
        return false
    }
}

/// A daemon-style stream server subclass with hooks of its own.
final class SystemdHookedStreamServer: StreamServer, @unchecked Sendable {
    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool {
        recordEvent("verify \(clientAddress)")
        return true
    }

    override func finishRequest(_ request: Request, clientAddress: SocketAddress) throws {
        recordEvent("finish begins")
        try super.finishRequest(request, clientAddress: clientAddress)
        recordEvent("finish ends")
    }
}

final class SystemdServerTests: SystemdEnvironmentTestCase {
    override func setUp() {
        super.setUp()
        _ = takeEvents()
    }

    // MARK: - Helpers

    private let loopbackStream = SocketAddress(.stream, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0))
    private let loopbackDatagram = SocketAddress(.datagram, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0))

    /// A raw descriptor (not close-on-exec) for a listening TCP socket on 127.0.0.1.
    private func rawListener() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", errno: errno) }
        let socket = try Socket(adopting: fd)
        try socket.bind(to: loopbackStream)
        try socket.listen(backlog: 8)
        let raw = socket.takeDescriptor()
        _ = fcntl(raw, F_SETFD, 0)  // as systemd passes it: without close-on-exec
        return raw
    }

    private func rawDatagram() throws -> Int32 {
        let socket = try Socket(family: AF_INET, transport: .datagram)
        try socket.bind(to: loopbackDatagram)
        return socket.takeDescriptor()
    }

    /// A connected pair of Unix stream sockets: (the one to adopt as raw fd, the client).
    private func connectedPair() throws -> (Int32, Socket) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SocketError("socketpair", errno: errno)
        }
        let client = try Socket(adopting: fds[1])
        try client.setTimeouts(receive: 30, send: 30)
        return (fds[0], client)
    }

    private func client(for address: SocketAddress) throws -> Socket {
        let socket = try Socket(family: address.family, transport: address.transport)
        try socket.setTimeouts(receive: 30, send: 30)
        if address.transport == .stream { try socket.connect(to: address) }
        return socket
    }

    private func readAll(_ socket: Socket) throws -> String {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if count == 0 { return String(decoding: result, as: UTF8.self) }
            result += buffer[0..<count]
        }
    }

    // MARK: - One descriptor

    func testClassifiesListenerDatagramAndConnection() throws {
        let listenerFD = try rawListener()
        XCTAssertEqual(fcntl(listenerFD, F_GETFD) & FD_CLOEXEC, 0)
        let listener = try InheritedSocket(adopting: listenerFD, name: "web")
        XCTAssertEqual(listener.kind, .listener)
        XCTAssertTrue(listener.isListening)
        XCTAssertFalse(listener.isConnection)
        XCTAssertEqual(listener.family, AF_INET)
        XCTAssertEqual(listener.transport, .stream)
        XCTAssertEqual(listener.fileDescriptor, listenerFD)
        XCTAssertEqual(listener.socket.fileDescriptor, listenerFD)
        XCTAssertEqual(listener.localAddress, try listener.socket.localAddress())
        XCTAssertNil(listener.peerAddress)
        XCTAssertNotEqual(fcntl(listenerFD, F_GETFD) & FD_CLOEXEC, 0, "adoption sets close-on-exec")
        XCTAssertEqual(listener.description, "fd \(listenerFD) 'web': \(listener.localAddress) (listener)")

        let datagram = try InheritedSocket(adopting: try rawDatagram(), name: "web")
        XCTAssertEqual(datagram.kind, .datagram)
        XCTAssertFalse(datagram.isListening)
        XCTAssertFalse(datagram.isConnection)

        let (connectionFD, client) = try connectedPair()
        defer { client.close() }
        let connection = try InheritedSocket(adopting: connectionFD, name: "connection")
        XCTAssertEqual(connection.kind, .connection)
        XCTAssertTrue(connection.isConnection)
        XCTAssertEqual(connection.peerAddress, SocketAddress(.stream, .unnamed))
        XCTAssertEqual(connection.description, "fd \(connectionFD) 'connection': unix:(unnamed) (connection)")

        let sockets = InheritedSockets([listener, datagram, connection])
        XCTAssertEqual(sockets.named("web").map(\.fileDescriptor), [listener.fileDescriptor, datagram.fileDescriptor],
                       "one unit name can cover several sockets")
        XCTAssertEqual(sockets.named("nothing").count, 0)
        XCTAssertEqual(sockets.unclaimed(byNames: ["web"]).map(\.fileDescriptor), [connection.fileDescriptor])
        XCTAssertEqual(sockets.unclaimed(byNames: [String]()).count, 3)
        XCTAssertEqual(sockets.names, ["web", "connection"])
        XCTAssertEqual(sockets.connections.map(\.fileDescriptor), [connectionFD])
        XCTAssertEqual(sockets.count, 3)
        XCTAssertEqual(InheritedSockets([]).description, "no inherited sockets")
        for socket in sockets { socket.socket.close() }
    }

    func testBadDescriptorsAreNamed() throws {
        let file = open("\(directory)/file", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(file) }
        XCTAssertThrowsError(try InheritedSocket(adopting: file, name: "x")) { error in
            XCTAssertEqual(error as? SocketActivationError, .notASocket(fd: file, name: "x"))
            XCTAssertEqual("\(error)", "fd \(file): not a socket (LISTEN_FDNAMES entry 'x')")
            XCTAssertEqual((error as? SocketActivationError)?.errno, ENOTSOCK)
            XCTAssertEqual((error as? SocketActivationError)?.fileDescriptor, file)
        }
        XCTAssertGreaterThanOrEqual(fcntl(file, F_GETFD), 0, "a refused descriptor is left open")

        let closed = dup(file)
        close(closed)
        XCTAssertThrowsError(try InheritedSocket(adopting: closed, name: "gone")) { error in
            XCTAssertEqual("\(error)", "fd \(closed): not open (LISTEN_FDNAMES entry 'gone')")
            XCTAssertEqual((error as? SocketActivationError)?.errno, EBADF)
        }

        let seqpacket = socket(AF_UNIX, cshims_sock_seqpacket | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(seqpacket) }
        XCTAssertThrowsError(try InheritedSocket(adopting: seqpacket, name: "sp")) { error in
            XCTAssertEqual(error as? SocketActivationError,
                           .unsupportedSocketType(fd: seqpacket, name: "sp", type: cshims_sock_seqpacket))
            XCTAssertEqual((error as? SocketActivationError)?.errno, ESOCKTNOSUPPORT)
        }
    }

    // MARK: - Explaining libsystemd's errors

    func testDiagnosesTheEnvironment() {
        let me = String(getpid())
        XCTAssertEqual(ActivationEnvironment(pid: "junk", fds: "1", names: nil).diagnose(errno: EINVAL), .invalidListenPID("junk"))
        XCTAssertEqual(ActivationEnvironment(pid: me, fds: "x1", names: nil).diagnose(errno: EINVAL), .invalidListenFDs("x1"))
        XCTAssertEqual(ActivationEnvironment(pid: me, fds: "-2", names: nil).diagnose(errno: EINVAL), .invalidListenFDs("-2"))
        let mismatch = ActivationEnvironment(pid: me, fds: "3", names: "a:b").diagnose(errno: EINVAL)
        XCTAssertEqual(mismatch, .nameCountMismatch(names: 2, descriptors: 3, value: "a:b"))
        XCTAssertEqual(mismatch.description, "LISTEN_FDNAMES has 2 names for 3 descriptors (LISTEN_FDNAMES='a:b')")
        XCTAssertEqual(mismatch.errno, EINVAL)
        XCTAssertEqual(
            ActivationEnvironment(pid: me, fds: "1", names: "").diagnose(errno: EINVAL).description,
            "LISTEN_FDNAMES has 0 names for 1 descriptor (LISTEN_FDNAMES='')")
        XCTAssertEqual(
            ActivationEnvironment(pid: me, fds: "2", names: "a::b").diagnose(errno: EINVAL),
            .nameCountMismatch(names: 3, descriptors: 2, value: "a::b"), "empty names count, as libsystemd splits them")
        // EBADF: libsystemd could not set close-on-exec on one of 3 … 3+n−1; the first closed one is named.
        var firstClosed: Int32 = 3
        while fcntl(firstClosed, F_GETFD) >= 0 { firstClosed += 1 }
        let count = firstClosed - 3 + 5
        let names = (0..<count).map { "n\($0 + 3)" }.joined(separator: ":")
        XCTAssertEqual(
            ActivationEnvironment(pid: me, fds: String(count), names: names).diagnose(errno: EBADF),
            .notOpen(fd: firstClosed, name: "n\(firstClosed)"))
        XCTAssertEqual(
            ActivationEnvironment(pid: me, fds: String(count), names: nil).diagnose(errno: EBADF),
            .notOpen(fd: firstClosed, name: "unknown"))
        let other = ActivationEnvironment(pid: me, fds: "2", names: "a:b").diagnose(errno: ENOMEM)
        XCTAssertEqual(other, .systemdFailed(SocketError("sd_listen_fds_with_names", errno: ENOMEM, subject: "LISTEN_FDS=2")))
        XCTAssertEqual(other.errno, ENOMEM)
        XCTAssertTrue(other.description.hasPrefix("socket activation: sd_listen_fds_with_names LISTEN_FDS=2: "), other.description)
    }

    // MARK: - Servers made from inherited sockets

    func testMakeServerServesAListener() throws {
        let inherited = try InheritedSocket(adopting: try rawListener(), name: "echo")
        let made = try inherited.makeServer(handler: SystemdRecordingEchoHandler.self)
        guard case .stream(let server) = made else { return XCTFail("\(made)") }
        defer { server.serverClose() }
        XCTAssertTrue(made.server === server)
        XCTAssertEqual(server.serverAddress, inherited.localAddress)
        let client = try client(for: server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("line\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        server.timeout = 30
        server.handleRequest()
        XCTAssertEqual(try readAll(client), "line\n")
    }

    func testMakeServerServesADatagramSocket() throws {
        let inherited = try InheritedSocket(adopting: try rawDatagram(), name: "echo")
        let made = try inherited.makeServer(handler: SystemdDatagramEchoHandler.self)
        guard case .datagram(let server) = made else { return XCTFail("\(made)") }
        defer { server.serverClose() }
        let client = try client(for: server.serverAddress)
        defer { client.close() }
        try client.sendDatagram(Array("dgram".utf8), to: server.serverAddress)
        server.timeout = 30
        server.handleRequest()
        XCTAssertEqual(try client.receiveDatagram(maxSize: 64).map { String(decoding: $0.bytes, as: UTF8.self) }, "dgram")
    }

    func testMakeServerServesAConnectionOnceAndReturns() throws {
        let (fd, client) = try connectedPair()
        defer { client.close() }
        let made = try InheritedSocket(adopting: fd, name: "connection").makeServer(handler: SystemdRecordingEchoHandler.self)
        guard case .connection(let server) = made else { return XCTFail("\(made)") }
        XCTAssertEqual(server.clientAddress, SocketAddress(.stream, .unnamed))
        XCTAssertFalse(server.isServed)
        try client.sendAll(Array("only once\n".utf8))
        server.serveForever()
        XCTAssertTrue(server.isServed)
        XCTAssertEqual(try readAll(client), "only once\n", "the reply, then EOF")
        server.serveForever()  // nothing left to serve: returns at once
        server.handleRequest()
        XCTAssertEqual(takeEvents(), ["handle unix:(unnamed)"])
        server.serverClose()
        XCTAssertEqual(server.fileno, -1)
    }

    func testConnectionServerLetsTheServerSpeakFirst() throws {
        let (fd, client) = try connectedPair()
        defer { client.close() }
        let server = try ConnectionServer(connection: try Socket(adopting: fd), handler: SystemdGreetingHandler.self)
        defer { server.serverClose() }
        server.serveForever()  // the client sends nothing: nothing is waited for
        XCTAssertEqual(try readAll(client), "hello from the server\n")
    }

    func testConnectionServerOverTCPReportsThePeer() throws {
        let listener = try Socket(family: AF_INET, transport: .stream)
        defer { listener.close() }
        try listener.bind(to: loopbackStream)
        try listener.listen(backlog: 1)
        let client = try client(for: try listener.localAddress())
        defer { client.close() }
        guard let (accepted, peer) = try listener.accept() else { return XCTFail("no connection") }
        let server = try ConnectionServer(connection: accepted, handler: SystemdRecordingEchoHandler.self, model: ThreadingModel())
        defer { server.serverClose() }
        XCTAssertEqual(server.clientAddress, peer)
        XCTAssertEqual(server.serverAddress, try listener.localAddress())
        try client.sendAll(Array("tcp\n".utf8))
        server.serveForever()
        XCTAssertEqual(try readAll(client), "tcp\n")
        XCTAssertEqual(takeEvents(), ["handle \(peer)"], "served on the calling thread, whatever the model")
    }

    func testConnectionServerRefusedByVerifyRequest() throws {
        let (fd, client) = try connectedPair()
        defer { client.close() }
        let server = try SystemdRefusingConnectionServer(connection: try Socket(adopting: fd), handler: SystemdRecordingEchoHandler.self)
        defer { server.serverClose() }
        XCTAssertFalse(server.serveConnection())
        XCTAssertEqual(try readAll(client), "", "closed unserved")
        XCTAssertEqual(takeEvents(), ["refused unix:(unnamed)"])
        XCTAssertTrue(server.isServed)
    }

    func testConnectionServerRejectsListenersAndDatagramSockets() throws {
        let listener = try Socket(adopting: try rawListener())
        defer { listener.close() }
        XCTAssertThrowsError(try ConnectionServer(connection: listener, handler: SystemdRecordingEchoHandler.self)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EINVAL)
        }
        let datagram = try Socket(adopting: try rawDatagram())
        defer { datagram.close() }
        XCTAssertThrowsError(try ConnectionServer(connection: datagram, handler: SystemdRecordingEchoHandler.self)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EPROTOTYPE)
        }
        XCTAssertFalse(listener.isClosed)
        XCTAssertFalse(datagram.isClosed)
    }

    func testDisconnectCutsABlockedHandlerShort() throws {
        let (fd, client) = try connectedPair()
        defer { client.close() }
        let server = try ConnectionServer(connection: try Socket(adopting: fd), handler: SystemdReadForeverHandler.self)
        defer { server.serverClose() }
        let returned = Atomic<Bool>(false)
        try DetachedThread.start {
            server.serveForever()
            returned.store(true, ordering: .releasing)
        }
        var deadline = MonotonicClock.seconds() + 10
        while !systemdServerEvents.withLock({ $0.contains("reading") }) && MonotonicClock.seconds() < deadline { usleep(1000) }
        usleep(50_000)
        XCTAssertFalse(returned.load(ordering: .acquiring), "the handler waits for the client")
        server.disconnect()
        deadline = MonotonicClock.seconds() + 10
        while !returned.load(ordering: .acquiring) && MonotonicClock.seconds() < deadline { usleep(1000) }
        XCTAssertTrue(returned.load(ordering: .acquiring), "serveForever returned after disconnect()")
        XCTAssertEqual(takeEvents(), ["reading", "read ended"])
    }

    func testServeConnectionGoesThroughAServerSubclassesHooks() throws {
        let (fd, client) = try connectedPair()
        defer { client.close() }
        // What a daemon with its own StreamServer subclass does with an Accept=yes connection.
        let server = try SystemdHookedStreamServer(adopting: try Socket(adopting: fd), handler: SystemdRecordingEchoHandler.self)
        defer { server.serverClose() }
        try client.sendAll(Array("hooked\n".utf8))
        XCTAssertTrue(server.serve(connection: server.socket))
        XCTAssertEqual(try readAll(client), "hooked\n")
        XCTAssertEqual(takeEvents(), ["verify unix:(unnamed)", "finish begins", "handle unix:(unnamed)", "finish ends"])
        XCTAssertTrue(server.socket.isClosed, "the request owned the connection and closed it")
    }
}
