import FamilyServer
import Glibc
import XCTest

// MARK: - Handlers used below

/// Records setup/handle/finish; `handle` throws when the client sent "fail".
private final class OrderHandler: StreamRequestHandler {
    override func setup() throws {
        try super.setup()
        record("setup")
    }

    override func handle() throws {
        let line = try rfile.readline()
        record("handle")
        if line == Array("fail\n".utf8) { throw DeliberateError("handle failed") }
        try wfile.write(line)
    }

    override func finish() throws {
        record("finish")
        try super.finish()
    }
}

/// Replies `re: PAYLOAD` in two writes, or nothing at all to the payload "silent".
private final class SelectiveReplyHandler: DatagramRequestHandler {
    override func handle() throws {
        let payload = try rfile.readToEnd()
        record("from \(clientAddress): \(String(decoding: payload, as: UTF8.self))")
        if payload == Array("silent".utf8) { return }
        try wfile.write("re: ")
        try wfile.write(payload)
    }
}

/// Sets TCP_NODELAY (ignored on Unix sockets), records the option's value, echoes one line.
private final class NoNagleHandler: StreamRequestHandler {
    override var disableNagleAlgorithm: Bool { true }

    override func handle() throws {
        if connection.family == AF_UNIX {
            record("unix")
        } else {
            record("nodelay=\(try connection.intOption(level: Int32(IPPROTO_TCP), name: TCP_NODELAY))")
        }
        try wfile.write(try rfile.readline())
    }
}

/// Leaves Nagle alone and records TCP_NODELAY.
private final class NagleHandler: StreamRequestHandler {
    override func handle() throws {
        record("nodelay=\(try connection.intOption(level: Int32(IPPROTO_TCP), name: TCP_NODELAY))")
    }
}

/// Waits for a line with a 100 ms timeout.
private final class TimeoutHandler: StreamRequestHandler {
    override var timeout: Double? { 0.1 }

    override func handle() throws {
        _ = try rfile.readline()
        record("line read")
    }
}

/// Writes through a 64 KiB buffer and never flushes itself.
private final class BufferedWriteHandler: StreamRequestHandler {
    override var writeBufferSize: Int { 64 * 1024 }

    override func handle() throws {
        while true {
            let line = try rfile.readline()
            if line.isEmpty { return }
            try wfile.write(line)
        }
    }
}

/// StreamRequestHandler and DatagramRequestHandler: the order of setup/handle/finish, the
/// datagram reply rules (nothing sent when nothing was written, no reply to an unbound Unix
/// client), TCP_NODELAY, the read timeout and the write buffer.
final class HandlerTests: FamilyServerTestCase {
    // MARK: - Order of calls

    func testSetupHandleFinishOrder() throws {
        let server = try RecordingStreamServer(address: address(.ipv4, .stream), handler: OrderHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("hi\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), Array("hi\n".utf8))
        XCTAssertEqual(server.events.all, ["setup", "handle", "finish"])
    }

    func testFinishRunsWhenHandleThrowsAndTheErrorIsHandled() throws {
        let server = try RecordingStreamServer(address: address(.ipv4, .stream), handler: OrderHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("fail\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), [], "the connection is shut down after the error")
        XCTAssertEqual(server.events.all, ["setup", "handle", "finish", "error: handle failed"])
    }

    // MARK: - DatagramRequestHandler

    func testDatagramHandlerSendsNothingWhenNothingWasWritten() throws {
        let server = try RecordingDatagramServer(address: address(.ipv4, .datagram), handler: SelectiveReplyHandler.self)
        defer { server.serverClose() }
        let client = try Client.datagramSocket(for: server.serverAddress)
        defer { client.close() }
        try client.sendDatagram(Array("silent".utf8), to: server.serverAddress)
        server.handleRequest()
        try client.sendDatagram(Array("hello".utf8), to: server.serverAddress)
        server.handleRequest()
        // Had the first request sent anything, even an empty datagram, it would come first.
        XCTAssertEqual(String(decoding: try Client.receiveDatagram(client), as: UTF8.self), "re: hello")
        XCTAssertEqual(server.events.all.count, 2)
        XCTAssertFalse(server.events.all.contains { $0.hasPrefix("error") })
    }

    func testDatagramHandlerSkipsAnUnboundUnixClient() throws {
        let server = try RecordingDatagramServer(address: address(.unixPath, .datagram), handler: SelectiveReplyHandler.self)
        defer { server.serverClose() }
        let anonymous = try Client.datagramSocket(for: server.serverAddress)
        defer { anonymous.close() }
        try anonymous.sendDatagram(Array("anonymous".utf8), to: server.serverAddress)
        server.handleRequest()
        let named = try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress(for: server.serverAddress))
        defer { named.close() }
        try named.sendDatagram(Array("named".utf8), to: server.serverAddress)
        server.handleRequest()
        XCTAssertEqual(String(decoding: try Client.receiveDatagram(named), as: UTF8.self), "re: named")
        XCTAssertEqual(server.events.all.first, "from unixgram:(unnamed): anonymous")
        XCTAssertEqual(server.events.all.count, 2, "\(server.events.all)")
        XCTAssertFalse(server.events.all.contains { $0.hasPrefix("error") }, "\(server.events.all)")
    }

    func testDatagramHandlerRepliesToAnAbstractClient() throws {
        let server = try RecordingDatagramServer(address: address(.unixAbstract, .datagram), handler: SelectiveReplyHandler.self)
        defer { server.serverClose() }
        let local = try XCTUnwrap(clientAddress(for: server.serverAddress))
        let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: local)
        defer { client.close() }
        try client.sendDatagram(Array("ping".utf8), to: server.serverAddress)
        server.handleRequest()
        XCTAssertEqual(String(decoding: try Client.receiveDatagram(client), as: UTF8.self), "re: ping")
        XCTAssertEqual(server.events.all, ["from \(local): ping"])
    }

    // MARK: - StreamRequestHandler

    func testDisableNagleAlgorithmSetsTCPNoDelay() throws {
        let server = try RecordingStreamServer(address: address(.ipv4, .stream), handler: NoNagleHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("x\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), Array("x\n".utf8))
        XCTAssertEqual(server.events.all, ["nodelay=1"])
    }

    func testNagleIsLeftAloneByDefault() throws {
        let server = try RecordingStreamServer(address: address(.ipv4, .stream), handler: NagleHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.shutdown(Int32(SHUT_WR))
        server.handleRequest()
        XCTAssertEqual(server.events.all, ["nodelay=0"])
    }

    /// Python raises EOPNOTSUPP here (handled as an error); FamilyServer ignores the setting on Unix sockets.
    func testDisableNagleAlgorithmIsIgnoredOnUnixSockets() throws {
        for family in [TestFamily.unixPath, .unixAbstract] {
            let server = try RecordingStreamServer(address: address(family, .stream), handler: NoNagleHandler.self)
            defer { server.serverClose() }
            let client = try Client.connect(server.serverAddress)
            defer { client.close() }
            try client.sendAll(Array("x\n".utf8))
            try client.shutdown(Int32(SHUT_WR))
            server.handleRequest()
            XCTAssertEqual(try Client.readToEnd(client), Array("x\n".utf8))
            XCTAssertEqual(server.events.all, ["unix"])
        }
    }

    func testTimeoutEndsAnIdleConnectionWithAnError() throws {
        let server = try RecordingStreamServer(address: address(.ipv4, .stream), handler: TimeoutHandler.self)
        defer { server.serverClose() }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        server.handleRequest()
        XCTAssertEqual(try Client.readToEnd(client), [])
        XCTAssertEqual(server.events.all.count, 1)
        XCTAssertTrue(server.events.all.first?.contains("errno \(EAGAIN)") ?? false, "\(server.events.all)")
    }

    func testBufferedWriterIsFlushedBeforeReadingAndOnFinish() throws {
        let server = try RecordingStreamServer(address: address(.unixPath, .stream), handler: BufferedWriteHandler.self)
        let serving = try TestThread { server.serveForever(pollInterval: 0.01) }
        defer {
            server.shutdown()
            serving.join()
            server.serverClose()
        }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        // Each reply must arrive while the handler waits for the next line: flushed before reading.
        for line in ["one\n", "two\n"] {
            try client.sendAll(Array(line.utf8))
            XCTAssertEqual(try Client.readLine(client), Array(line.utf8))
        }
        // Pipelined lines come back together, flushed when the handler waits again or finishes.
        try client.sendAll(Array("three\nfour\n".utf8))
        try client.shutdown(Int32(SHUT_WR))
        XCTAssertEqual(try Client.readToEnd(client), Array("three\nfour\n".utf8))
        XCTAssertEqual(server.events.all, [])
    }
}
