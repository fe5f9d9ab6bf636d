import FamilyServer
import Glibc
import XCTest

/// Rejects every request and counts `shutdownRequest` calls (CPython's bpo-26309 server).
private final class RejectingStreamServer: StreamServer, @unchecked Sendable {
    let events = EventLog()
    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool { false }
    override func shutdownRequest(_ request: Request) {
        events.append("shutdownRequest")
        super.shutdownRequest(request)
    }
}

private final class RejectingDatagramServer: DatagramServer, @unchecked Sendable {
    let events = EventLog()
    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool { false }
    override func shutdownRequest(_ request: Request) {
        events.append("shutdownRequest")
        super.shutdownRequest(request)
    }
}

/// Logs every `shutdownRequest` and `closeRequest` to a file (forked children log too).
private final class CountingServer: StreamServer, @unchecked Sendable {
    var log: LogFile!
    override func shutdownRequest(_ request: Request) {
        log.append("shutdownRequest")
        super.shutdownRequest(request)
    }
}

/// A handler that must never run.
private final class NeverHandler: BaseRequestHandler {
    override func handle() throws {
        fatalError("a rejected request reached its handler")
    }
}

/// The port of CPython's `MiscTestCase`: the public names, `shutdownRequest` after a rejected
/// request, threads reaped; plus `shutdownRequest` exactly once per request in every model.
final class MiscTests: FamilyServerTestCase {
    /// CPython's `test_all`: the names SPEC section 1 fixes exist and are public (this file
    /// imports FamilyServer without @testable).
    func testPublicNames() throws {
        let servers: [BaseServer.Type] = [
            BaseServer.self, StreamServer.self, TCPServer.self, UnixStreamServer.self,
            DatagramServer.self, UDPServer.self, UnixDatagramServer.self,
        ]
        XCTAssertEqual(servers.count, 7)
        let handlers: [BaseRequestHandler.Type] = [
            BaseRequestHandler.self, StreamRequestHandler.self, DatagramRequestHandler.self,
        ]
        XCTAssertEqual(handlers.count, 3)
        let threading = ThreadingModel(daemonThreads: false, blockOnClose: true)
        let forking = ForkingModel(maxChildren: 40, blockOnClose: true)
        let models: [ProcessingModel] = [SerialModel(), threading, forking]
        XCTAssertEqual(models.count, 3)
        _ = (threading.daemonThreads, threading.blockOnClose, forking.maxChildren, forking.blockOnClose, forking.activeChildren)

        // Template methods of BaseServer.
        _ = BaseServer.serverBind as (BaseServer) -> () throws -> Void
        _ = BaseServer.serverActivate as (BaseServer) -> () throws -> Void
        _ = BaseServer.serveForever(pollInterval:) as (BaseServer) -> (Double) -> Void
        _ = BaseServer.handleRequest as (BaseServer) -> () -> Void
        _ = BaseServer.shutdown(wait:) as (BaseServer) -> (Bool) -> Void
        _ = BaseServer.serverClose as (BaseServer) -> () -> Void
        _ = BaseServer.handleTimeout as (BaseServer) -> () -> Void
        _ = BaseServer.serviceActions as (BaseServer) -> () -> Void
        _ = BaseServer.verifyRequest as (BaseServer) -> (Request, SocketAddress) -> Bool
        _ = BaseServer.processRequest as (BaseServer) -> (Request, SocketAddress) throws -> Void
        _ = BaseServer.finishRequest as (BaseServer) -> (Request, SocketAddress) throws -> Void
        _ = BaseServer.shutdownRequest as (BaseServer) -> (Request) -> Void
        _ = BaseServer.closeRequest as (BaseServer) -> (Request) -> Void
        _ = BaseServer.handleError as (BaseServer) -> (Request?, SocketAddress?, any Error) -> Void

        // Attributes.
        _ = \BaseServer.fileno
        _ = \BaseServer.serverAddress
        _ = \BaseServer.addressFamily
        _ = \BaseServer.socketType
        _ = \BaseServer.socket
        _ = \BaseServer.timeout
        _ = \BaseServer.allowReuseAddress
        _ = \BaseServer.allowReusePort
        _ = \BaseServer.requestQueueSize
        _ = \DatagramServer.maxPacketSize

        // Handlers.
        _ = \BaseRequestHandler.request
        _ = \BaseRequestHandler.clientAddress
        _ = \BaseRequestHandler.server
        _ = BaseRequestHandler.setup as (BaseRequestHandler) -> () throws -> Void
        _ = BaseRequestHandler.handle as (BaseRequestHandler) -> () throws -> Void
        _ = BaseRequestHandler.finish as (BaseRequestHandler) -> () throws -> Void
        _ = \StreamRequestHandler.rfile
        _ = \StreamRequestHandler.wfile
        _ = \StreamRequestHandler.timeout
        _ = \StreamRequestHandler.disableNagleAlgorithm
        _ = \DatagramRequestHandler.rfile
        _ = \DatagramRequestHandler.wfile
        _ = BufferedReader.readline(limit:) as (BufferedReader) -> (Int?) throws -> [UInt8]
        _ = BufferedReader.read as (BufferedReader) -> (Int) throws -> [UInt8]
        _ = BufferedReader.readToEnd as (BufferedReader) -> () throws -> [UInt8]
        _ = BufferedWriter.flush as (BufferedWriter) -> () throws -> Void

        // Python's class attribute defaults, where FamilyServer keeps them.
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamRequestHandler.self)
        defer { server.serverClose() }
        XCTAssertNil(server.timeout)
        XCTAssertFalse(server.allowReusePort)
        XCTAssertEqual(server.requestQueueSize, Int32(SOMAXCONN))
        XCTAssertEqual(server.addressFamily, AF_INET)
        XCTAssertEqual(server.socketType, .stream)
        XCTAssertEqual(forking.maxChildren, 40)
        XCTAssertTrue(ThreadingModel().blockOnClose)
        XCTAssertFalse(ThreadingModel().daemonThreads)
        XCTAssertTrue(ForkingModel().blockOnClose)
    }

    /// bpo-26309: `shutdownRequest` is called, exactly once, for a request `verifyRequest` rejects.
    func testShutdownRequestCalledIfVerifyRequestFalse() throws {
        let server = try RejectingStreamServer(address: address(.ipv4, .stream), handler: NeverHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(server.events.all, ["shutdownRequest"])
        XCTAssertEqual(try Client.readToEnd(client), [], "the rejected connection is closed")
    }

    func testShutdownRequestCalledIfVerifyRequestFalseInEveryModel() throws {
        for model in TestModel.inThisRun {
            let server = try RejectingStreamServer(address: address(.unixPath, .stream), handler: NeverHandler.self, model: model.make())
            try runServer(server) { address in
                // Nothing sent: a connection closed with unread data is reset rather than ended.
                try expect(try Client.exchange(address, []).isEmpty, "the rejected connection got a reply")
            }
            XCTAssertEqual(server.events.all, Array(repeating: "shutdownRequest", count: 3), "\(model)")
        }
    }

    func testShutdownRequestCalledIfVerifyRequestFalseForADatagram() throws {
        let server = try RejectingDatagramServer(address: address(.ipv4, .datagram), handler: NeverHandler.self)
        defer { server.serverClose() }
        let client = try Client.datagramSocket(for: server.serverAddress)
        defer { client.close() }
        try client.sendDatagram(Array("x".utf8), to: server.serverAddress)
        server.handleRequest()
        XCTAssertEqual(server.events.all, ["shutdownRequest"])
    }

    /// `shutdownRequest` runs exactly once for every served request, whichever model serves it.
    func testShutdownRequestCalledOncePerServedRequest() throws {
        for model in TestModel.inThisRun {
            let log = LogFile(path: path("log-\(model)"))
            let server = try CountingServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self, model: model.make())
            server.log = log
            try runServer(server) { try streamEchoClient($0) }
            XCTAssertEqual(log.contents, String(repeating: "shutdownRequest\n", count: 3), "\(model)")
        }
    }

    /// bpo-37193: finished threads do not pile up. Ten requests one after another leave fewer than
    /// ten threads, and closing the server lets every one of them end.
    func testThreadsReaped() throws {
        let threadsBefore = threadCount()
        let model = ThreadingModel()
        let server = try TCPServer(address: address(.ipv4, .stream), handler: StreamRequestHandler.self, model: model)
        for _ in 0..<10 {
            let client = try Client.connect(server.serverAddress)
            try client.shutdown(Int32(SHUT_WR))
            server.handleRequest()
            XCTAssertEqual(try Client.readToEnd(client), [])
            client.close()
        }
        XCTAssertLessThan(model.threadCount, 10)
        server.serverClose()
        XCTAssertTrue(eventually { model.threadCount == 0 }, "\(model.threadCount) threads left after serverClose")
        XCTAssertTrue(eventually { threadCount() <= threadsBefore }, "\(threadCount()) threads, \(threadsBefore) before")
    }
}
