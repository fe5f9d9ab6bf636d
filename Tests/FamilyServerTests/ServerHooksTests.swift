import FamilyServer
import Glibc
import XCTest

/// Sets SO_KEEPALIVE in `serverBind` before binding, and records whether the socket was bound yet.
private final class KeepAliveServer: StreamServer, @unchecked Sendable {
    let events = EventLog()
    override func serverBind() throws {
        events.append("serverBind, port before: \(try socket.localAddress().port ?? 0)")
        try socket.setOption(level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1, label: "SO_KEEPALIVE")
        try super.serverBind()
    }
}

/// Listens with a backlog of 2 instead of the default.
private final class SmallBacklogServer: StreamServer, @unchecked Sendable {
    override func serverActivate() throws {
        requestQueueSize = 2
        try super.serverActivate()
    }
}

/// Records every call of `serverBind` and `serverActivate`.
private final class HookRecordingStreamServer: StreamServer, EventRecording, @unchecked Sendable {
    let events = EventLog()
    override func serverBind() throws {
        events.append("serverBind")
        try super.serverBind()
    }
    override func serverActivate() throws {
        events.append("serverActivate")
        try super.serverActivate()
    }
}

private final class HookRecordingDatagramServer: DatagramServer, EventRecording, @unchecked Sendable {
    let events = EventLog()
    override func serverBind() throws {
        events.append("serverBind")
        try super.serverBind()
    }
    override func serverActivate() throws {
        events.append("serverActivate")
        try super.serverActivate()
    }
}

/// Fails in `serverActivate`, after binding.
private final class FailingActivateServer: StreamServer, @unchecked Sendable {
    override func serverActivate() throws {
        throw DeliberateError("activate failed")
    }
}

/// Times out in `handleRequest` and counts `handleTimeout` and `serviceActions`.
private final class TimingServer: StreamServer, EventRecording, @unchecked Sendable {
    let events = EventLog()
    override func handleTimeout() { events.append("handleTimeout") }
    override func serviceActions() {
        events.append("serviceActions")
        super.serviceActions()
    }
}

/// Takes no request before ``resumeAt`` (a rate limit's next token) and records when it took one.
private final class PacedServer: StreamServer, @unchecked Sendable {
    let resumeAt = ConditionLock<Double?>(nil)
    let takenAt = ConditionLock<[Double]>([])
    override var requestsResumeAt: Double? { resumeAt.withLock { $0 } }
    override func getRequest() throws -> (Request, SocketAddress)? {
        guard let request = try super.getRequest() else { return nil }
        takenAt.withLock { $0.append(MonotonicClock.seconds()) }
        return request
    }
}

/// Has work due in ``serviceActions()`` at ``dueAt``, and records when it ran after that.
private final class DueActionsServer: StreamServer, @unchecked Sendable {
    let dueAt = ConditionLock<Double?>(nil)
    let ranAt = ConditionLock<Double?>(nil)
    override var serviceActionsDueAt: Double? { dueAt.withLock { $0 } }
    override func serviceActions() {
        super.serviceActions()
        let now = MonotonicClock.seconds()
        let due = dueAt.withLock { due -> Bool in
            guard let at = due, now >= at else { return false }
            due = nil
            return true
        }
        if due { ranAt.withLock { $0 = now } }
    }
}

/// Fails in `processRequest`.
private final class FailingProcessServer: StreamServer, EventRecording, @unchecked Sendable {
    let events = EventLog()
    override func processRequest(_ request: Request, clientAddress: SocketAddress) throws {
        throw DeliberateError("no worker")
    }
    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        events.append("handleError: \(error)")
    }
    override func shutdownRequest(_ request: Request) {
        events.append("shutdownRequest")
        super.shutdownRequest(request)
    }
}

/// Records TCP keep-alive of the accepted connection.
private final class KeepAliveProbeHandler: StreamRequestHandler {
    override func handle() throws {
        let value = try connection.intOption(level: SOL_SOCKET, name: SO_KEEPALIVE)
        (server as! KeepAliveServer).events.append("connection SO_KEEPALIVE=\(value)")
    }
}

/// The template methods a subclass overrides: `serverBind` and `serverActivate` (and that
/// adoption skips both), `bindAndActivate: false`, `handleTimeout`, `serviceActions` and a
/// failing `processRequest`.
final class ServerHooksTests: FamilyServerTestCase {
    func testServerBindOverrideSetsASocketOption() throws {
        let server = try KeepAliveServer(address: address(.ipv4, .stream), handler: KeepAliveProbeHandler.self)
        defer { server.serverClose() }
        XCTAssertEqual(try server.socket.intOption(level: SOL_SOCKET, name: SO_KEEPALIVE), 1)
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), [])
        // Set before bind, and inherited by the connections the listener accepts.
        XCTAssertEqual(server.events.all, ["serverBind, port before: 0", "connection SO_KEEPALIVE=1"])
    }

    /// Pending connections beyond the backlog are refused to a non-blocking Unix client (EAGAIN):
    /// with `listen(2)` Linux queues 3 (backlog + 1), with the default backlog many more.
    func testServerActivateOverrideChangesTheBacklog() throws {
        let small = try SmallBacklogServer(address: address(.unixPath, .stream), handler: StreamEchoHandler.self)
        defer { small.serverClose() }
        XCTAssertEqual(small.requestQueueSize, 2)
        XCTAssertEqual(try pendingConnections(small, upTo: 20), 3)

        let regular = try StreamServer(address: address(.unixPath, .stream), handler: StreamEchoHandler.self)
        defer { regular.serverClose() }
        XCTAssertEqual(try pendingConnections(regular, upTo: 20), 20)
    }

    /// How many non-blocking connections to `server` succeed before one fails with EAGAIN.
    private func pendingConnections(_ server: BaseServer, upTo limit: Int) throws -> Int {
        let clients = (0..<limit).compactMap { _ in try? Socket(family: AF_UNIX, transport: .stream) }
        defer { clients.forEach { $0.close() } }
        for (index, client) in clients.enumerated() {
            try client.setNonBlocking(true)
            do {
                try client.connect(to: server.serverAddress)
            } catch {
                guard error.errno == EAGAIN else { throw error }
                return index
            }
        }
        return clients.count
    }

    func testStreamAdoptionSkipsBindAndActivate() throws {
        for family in TestFamily.allCases where family != .ipv6 {
            let listener = try Socket(family: address(family, .stream).family, transport: .stream)
            try listener.bind(to: address(family, .stream))
            try listener.listen(backlog: 8)
            let bound = try listener.localAddress()
            let server = try HookRecordingStreamServer(adopting: listener, handler: StreamEchoHandler.self)
            XCTAssertEqual(server.serverAddress, bound)
            XCTAssertEqual(server.fileno, listener.fileDescriptor)
            try runServer(server) { try streamEchoClient($0) }
            XCTAssertEqual(server.events.all, [], "\(family)")
        }
    }

    func testDatagramAdoptionSkipsBindAndActivate() throws {
        for family in TestFamily.allCases where family != .ipv6 {
            let socket = try Socket(family: address(family, .datagram).family, transport: .datagram)
            try socket.bind(to: address(family, .datagram))
            let bound = try socket.localAddress()
            let server = try HookRecordingDatagramServer(adopting: socket, handler: DatagramEchoHandler.self)
            XCTAssertEqual(server.serverAddress, bound)
            try runServer(server) { try datagramEchoClient($0) }
            XCTAssertEqual(server.events.all, [], "\(family)")
        }
    }

    /// A server made normally calls both hooks, once each, in order.
    func testBindAndActivateAreCalledInOrder() throws {
        let stream = try HookRecordingStreamServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        stream.serverClose()
        XCTAssertEqual(stream.events.all, ["serverBind", "serverActivate"])
        let datagram = try HookRecordingDatagramServer(address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self)
        datagram.serverClose()
        XCTAssertEqual(datagram.events.all, ["serverBind", "serverActivate"])
    }

    /// `fd:N`: a descriptor made elsewhere is adopted with its family and type read from the
    /// kernel, and set close-on-exec.
    func testAdoptingADescriptor() throws {
        let fd = Glibc.socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0)
        let socket = try Socket(adopting: fd)
        defer { socket.close() }
        XCTAssertEqual(socket.family, AF_INET6)
        XCTAssertEqual(socket.transport, .datagram)
        XCTAssertEqual(socket.fileDescriptor, fd)
        XCTAssertEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC)
    }

    func testAdoptingANonSocketFails() throws {
        var pipeFDs: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&pipeFDs), 0)
        defer { pipeFDs.forEach { close($0) } }
        XCTAssertThrowsError(try Socket(adopting: pipeFDs[0])) { error in
            XCTAssertEqual((error as? SocketError)?.errno, ENOTSOCK)
            XCTAssertTrue("\(error)".contains("fd \(pipeFDs[0])"), "\(error)")
        }
        XCTAssertEqual(fcntl(pipeFDs[0], F_GETFD), 0, "a descriptor that was refused is left as it was")
        let closed = dup(pipeFDs[0])
        close(closed)
        XCTAssertThrowsError(try Socket(adopting: closed)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EBADF)
        }
    }

    /// `bindAndActivate: false` leaves the socket unbound until the caller binds and activates it.
    func testBindAndActivateFalse() throws {
        let requested = address(.ipv4, .stream)
        let server = try HookRecordingStreamServer(address: requested, handler: StreamEchoHandler.self, bindAndActivate: false)
        XCTAssertEqual(server.events.all, [])
        XCTAssertEqual(try server.socket.localAddress().port, 0)
        XCTAssertFalse(server.socket.isListening)
        try server.socket.setOption(level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1, label: "SO_KEEPALIVE")
        try server.serverBind()
        try server.serverActivate()
        XCTAssertTrue(server.socket.isListening)
        XCTAssertNotEqual(server.serverAddress.port, 0)
        try runServer(server) { try streamEchoClient($0) }
        XCTAssertEqual(server.events.all, ["serverBind", "serverActivate"])
    }

    /// `bindAndActivate()` after configuring an unbound server: both hooks once, and on failure the
    /// server is closed with no socket file left.
    func testBindAndActivateMethod() throws {
        let requested = address(.unixPath, .stream)
        let server = try HookRecordingStreamServer(address: requested, handler: StreamEchoHandler.self, bindAndActivate: false)
        server.socketMode = 0o600
        try server.bindAndActivate()
        XCTAssertEqual(server.events.all, ["serverBind", "serverActivate"])
        var info = stat()
        XCTAssertEqual(lstat(requested.path!, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        try runServer(server, checkAddress: false) { try streamEchoClient($0) }

        let failing = try FailingActivateServer(address: requested, handler: StreamEchoHandler.self, bindAndActivate: false)
        XCTAssertThrowsError(try failing.bindAndActivate())
        XCTAssertEqual(failing.fileno, -1)
        XCTAssertNil(fileType(requested.path!))
    }

    /// bpo-22435 for activation: the socket is closed, and a Unix socket file just created removed.
    func testFailedActivateClosesTheSocketAndRemovesItsFile() throws {
        let requested = address(.unixPath, .stream)
        let before = Descriptors()
        for _ in 0..<100 {
            XCTAssertThrowsError(try FailingActivateServer(address: requested, handler: StreamEchoHandler.self)) { error in
                XCTAssertEqual(error as? DeliberateError, DeliberateError("activate failed"))
            }
            XCTAssertNil(fileType(requested.path!))
        }
        XCTAssertTrue(Descriptors().isWithin(before), "\(Descriptors()), \(before) before: \(openDescriptors())")
    }

    func testFailedBindLeaksNothing() throws {
        let blocker = path("not-a-socket")
        try writeFile(blocker, "keep")
        let before = Descriptors()
        for _ in 0..<100 {
            XCTAssertThrowsError(try UnixStreamServer(address: SocketAddress(.stream, .unixPath(blocker)), handler: StreamEchoHandler.self))
            XCTAssertThrowsError(try UDPServer(address: SocketAddress(.datagram, .inet(IPAddress(numeric: "192.0.2.1")!, port: 0)),
                                               handler: DatagramEchoHandler.self)) { error in
                XCTAssertEqual((error as? SocketError)?.errno, EADDRNOTAVAIL)
            }
        }
        XCTAssertTrue(Descriptors().isWithin(before), "\(Descriptors()), \(before) before: \(openDescriptors())")
    }

    func testHandleRequestTimesOut() throws {
        let server = try TimingServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { server.serverClose() }
        server.timeout = 0.05
        server.handleRequest()
        XCTAssertEqual(server.events.all, ["handleTimeout"])
        // With a request pending, no timeout.
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("x\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), Array("x\n".utf8))
        XCTAssertEqual(server.events.all, ["handleTimeout"])
    }

    func testServiceActionsRunWhileServing() throws {
        let server = try TimingServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        let serving = try TestThread { server.serveForever(pollInterval: 0.01) }
        XCTAssertTrue(eventually { server.events.count(of: "serviceActions") >= 3 })
        server.shutdown()
        XCTAssertTrue(serving.join())
        server.serverClose()
        XCTAssertEqual(server.events.count(of: "handleTimeout"), 0, "serveForever ignores timeout")
    }

    /// Before `requestsResumeAt` the socket is not watched (the client waits in the backlog); the loop wakes by then
    /// on its own, long before its poll interval (60 s, past the client's patience).
    func testRequestsResumeAtPacesTheServeLoop() throws {
        let server = try PacedServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        let resume = MonotonicClock.seconds() + 0.3
        server.resumeAt.withLock { $0 = resume }
        let serving = try TestThread { server.serveForever(pollInterval: 60) }
        defer {
            server.shutdown()
            serving.join()
            server.serverClose()
        }
        XCTAssertEqual(server.nextWakeup, resume)
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.setTimeouts(receive: 10, send: 10)
        try client.sendAll(Array("x\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        XCTAssertEqual(try Client.readToEnd(client), Array("x\n".utf8), "served once it resumed")
        let taken = server.takenAt.withLock { $0 }
        XCTAssertEqual(taken.count, 1)
        XCTAssertGreaterThanOrEqual(taken.first ?? 0, resume, "not taken before")
    }

    /// `serviceActionsDueAt` wakes the serve loop by then, long before its poll interval.
    func testServiceActionsDueAtWakesTheServeLoop() throws {
        let server = try DueActionsServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        let due = MonotonicClock.seconds() + 0.3
        server.dueAt.withLock { $0 = due }
        let serving = try TestThread { server.serveForever(pollInterval: 60) }
        XCTAssertTrue(eventually(timeout: 10) { server.ranAt.withLock { $0 } != nil }, "serviceActions ran when due")
        XCTAssertGreaterThanOrEqual(server.ranAt.withLock { $0 } ?? 0, due)
        server.shutdown()
        XCTAssertTrue(serving.join())
        server.serverClose()
    }

    /// A request the model could not take is handled as an error and shut down once.
    func testProcessRequestErrorIsHandledAndTheRequestShutDown() throws {
        let server = try FailingProcessServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), [])
        XCTAssertEqual(server.events.all, ["handleError: no worker", "shutdownRequest"])
    }
}
