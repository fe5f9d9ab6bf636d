import FamilyServer
import Foundation
import Glibc
import Logging
import XCTest

/// A Unix datagram reply reaches only the socket that sent the request (issue 11, item 1). The
/// attacks by another user run against the daemon in ServerdTests/LocalAttackerDatagramTests;
/// these cover the library's checks in one process: the sender's path swapped for a symlink, for
/// another user's socket, or made relative, and abstract names that changed hands.
final class UnixReplyTargetTests: FamilyServerTestCase {
    /// A bound client sends a request, then `swap` runs before the server handles it.
    private func requestThenSwap(
        _ swap: (_ clientPath: String) throws -> Void, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (server: RecordingDatagramServer, victim: Socket) {
        let server = try RecordingDatagramServer(address: address(.unixPath, .datagram), handler: DatagramEchoHandler.self)
        let victimPath = path("victim.sock")
        let victim = try Socket(family: AF_UNIX, transport: .datagram)
        try victim.bind(to: SocketAddress(.datagram, .unixPath(victimPath)))
        try victim.setNonBlocking(true)
        let clientPath = path("client.sock")
        let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: SocketAddress(.datagram, .unixPath(clientPath)))
        try client.sendDatagram(Array("payload".utf8), to: server.serverAddress)
        client.close()
        try swap(clientPath)
        server.handleRequest()
        return (server, victim)
    }

    func testAReplyNeverFollowsASymlinkSwappedInForTheSendersSocket() throws {
        let (server, victim) = try requestThenSwap { clientPath in
            XCTAssertEqual(unlink(clientPath), 0)
            XCTAssertEqual(symlink(path("victim.sock"), clientPath), 0)
        }
        defer { server.serverClose(); victim.close() }
        XCTAssertNil(try victim.receiveDatagram(maxSize: 100), "the reply reached the socket behind the symlink")
        XCTAssertEqual(server.events.all.count, 1, "\(server.events.all)")
        XCTAssertTrue(server.events.all.first?.contains("is a symlink") == true, "\(server.events.all)")
    }

    func testAReplyNeverReachesASocketOfAnotherUser() throws {
        let (server, victim) = try requestThenSwap { clientPath in
            // Another socket, owned by someone else, now has the sender's name.
            XCTAssertEqual(unlink(clientPath), 0)
            XCTAssertEqual(rename(path("victim.sock"), clientPath), 0)
            XCTAssertEqual(chown(clientPath, getuid() &+ 4242, getgid()), 0)
        }
        defer { server.serverClose(); victim.close() }
        XCTAssertNil(try victim.receiveDatagram(maxSize: 100), "the reply reached another user's socket")
        XCTAssertTrue(server.events.all.first?.contains("belongs to uid \(getuid() &+ 4242)") == true, "\(server.events.all)")
    }

    func testAReplyNeverFollowsADirectorySymlinkTheSenderCouldHavePlaced() throws {
        let server = try RecordingDatagramServer(address: address(.unixPath, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        XCTAssertEqual(mkdir(path("client"), 0o755), 0)
        XCTAssertEqual(mkdir(path("elsewhere"), 0o755), 0)
        let victim = try Socket(family: AF_UNIX, transport: .datagram)
        defer { victim.close() }
        try victim.bind(to: SocketAddress(.datagram, .unixPath(path("elsewhere/c.sock"))))
        try victim.setNonBlocking(true)
        // A world-writable directory: anyone could have replaced `client` by a symlink.
        XCTAssertEqual(chmod(directory, 0o777), 0)
        let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: SocketAddress(.datagram, .unixPath(path("client/c.sock"))))
        try client.sendDatagram(Array("payload".utf8), to: server.serverAddress)
        client.close()
        XCTAssertEqual(rename(path("client"), path("old")), 0)
        XCTAssertEqual(symlink(path("elsewhere"), path("client")), 0)
        server.handleRequest()
        XCTAssertNil(try victim.receiveDatagram(maxSize: 100), "the reply went through the swapped directory")
        XCTAssertTrue(server.events.all.first?.contains("symlink that someone other than root could have placed") == true, "\(server.events.all)")
    }

    /// The second reply to a sender skips the walk; a client that binds the same path anew (a new
    /// socket file) is still answered at its new socket.
    func testAClientThatRebindsItsPathIsAnsweredAtItsNewSocket() throws {
        let server = try RecordingDatagramServer(address: address(.unixPath, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        let clientAddress = SocketAddress(.datagram, .unixPath(path("client.sock")))
        for round in 0..<3 {
            let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress)
            for payload in ["first \(round)", "second \(round)"] {
                try client.sendDatagram(Array(payload.utf8), to: server.serverAddress)
                server.handleRequest()
                XCTAssertEqual(String(decoding: try Client.receiveDatagram(client), as: UTF8.self), payload, "\(server.events.all)")
            }
            client.close()
            XCTAssertEqual(unlink(path("client.sock")), 0)
        }
        XCTAssertTrue(server.events.all.isEmpty, "\(server.events.all)")
    }

    /// What the checks keep between replies goes once unused: no descriptor outlives a burst.
    func testTheChecksLeaveNoDescriptorBehind() throws {
        // Sockets and files only: the runtime may open an eventfd or timerfd of its own meanwhile.
        func descriptors() -> [String] { openDescriptors().filter { !$0.contains("anon_inode:") } }
        UnixReplyTarget.releaseIdle(after: 0)
        let before = descriptors()
        for family in [TestFamily.unixPath, .unixAbstract] {
            let server = try RecordingDatagramServer(address: address(family, .datagram), handler: DatagramEchoHandler.self)
            let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress(for: server.serverAddress))
            for _ in 0..<3 {
                try client.sendDatagram(Array("hello".utf8), to: server.serverAddress)
                server.handleRequest()
                XCTAssertEqual(try Client.receiveDatagram(client), Array("hello".utf8), "\(server.events.all)")
            }
            client.close()
            server.serverClose()
        }
        UnixReplyTarget.releaseIdle(after: 0)
        XCTAssertEqual(descriptors(), before)
    }

    func testARootOwnedDirectorySymlinkIsFollowed() throws {
        // /var/run → /run on Debian: a client bound under it still gets its reply.
        let server = try RecordingDatagramServer(address: address(.unixPath, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        XCTAssertEqual(mkdir(path("real"), 0o755), 0)
        XCTAssertEqual(symlink(path("real"), path("link")), 0)
        XCTAssertEqual(chmod(directory, 0o755), 0)
        try XCTSkipUnless(getuid() == 0, "the link must be root's")
        let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: SocketAddress(.datagram, .unixPath(path("link/c.sock"))))
        defer { client.close() }
        try client.sendDatagram(Array("hello".utf8), to: server.serverAddress)
        server.handleRequest()
        XCTAssertEqual(try Client.receiveDatagram(client), Array("hello".utf8), "\(server.events.all)")
    }

    func testAnAbstractNameThatNobodyHoldsGetsNoReply() throws {
        let server = try RecordingDatagramServer(address: address(.unixAbstract, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress(for: server.serverAddress))
        try client.sendDatagram(Array("payload".utf8), to: server.serverAddress)
        client.close()
        server.handleRequest()
        XCTAssertTrue(server.events.all.first?.contains("no socket holds the abstract name") == true, "\(server.events.all)")
        XCTAssertEqual(server.droppedReplies.count, 0, "a recording server handles the refusal itself")
    }

    func testRefusalsAreCountedAndTheLogIsThrottled() throws {
        let log = CapturedLog()
        let server = try DatagramServer(
            address: address(.unixAbstract, .datagram), handler: DatagramEchoHandler.self, logger: log.logger)
        defer { server.serverClose() }
        for _ in 0..<5 {
            let client = try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress(for: server.serverAddress))
            try client.sendDatagram(Array("payload".utf8), to: server.serverAddress)
            client.close()
            server.handleRequest()
        }
        XCTAssertEqual(server.droppedReplies.count, 5)
        XCTAssertEqual(log.lines.filter { $0.contains("dropped") }.count, 1, "\(log.lines)")
    }

    /// (A forked client: its working directory differs from the server's.)
    func testARelativeSenderPathIsTakenFromTheWorkingDirectoryOfAForkedClient() throws {
        let server = try RecordingDatagramServer(address: address(.unixPath, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        let serverAddress = server.serverAddress
        let elsewhere = path("elsewhere")
        XCTAssertEqual(mkdir(elsewhere, 0o755), 0)
        let child = try ClientProcess {
            guard chdir(elsewhere) == 0 else { throw TestFailure("chdir \(elsewhere)") }
            let client = try Client.datagramSocket(for: serverAddress, bindingTo: SocketAddress(.datagram, .unixPath("relative.sock")))
            try client.sendDatagram(Array("hello".utf8), to: serverAddress)
            let reply = try Client.receiveDatagram(client)
            guard reply == Array("hello".utf8) else { throw TestFailure("the reply was \(reply)") }
        }
        server.handleRequest()
        try child.wait()
        XCTAssertTrue(server.events.all.isEmpty, "\(server.events.all)")
    }

    /// A datagram queued before the server asked for credentials is checked on structure alone.
    func testWithoutCredentialsTheStructureIsStillChecked() throws {
        let socket = try Socket(family: AF_UNIX, transport: .datagram)
        defer { socket.close() }
        let client = try Socket(family: AF_UNIX, transport: .datagram)
        defer { client.close() }
        try client.bind(to: SocketAddress(.datagram, .unixPath(path("client.sock"))))
        XCTAssertNoThrow(try UnixReplyTarget.resolve(sender: SocketAddress(.datagram, .unixPath(path("client.sock"))), credentials: nil, from: socket))
        XCTAssertEqual(symlink(path("client.sock"), path("link.sock")), 0)
        XCTAssertThrowsError(try UnixReplyTarget.resolve(sender: SocketAddress(.datagram, .unixPath(path("link.sock"))), credentials: nil, from: socket))
        XCTAssertThrowsError(try UnixReplyTarget.resolve(sender: SocketAddress(.datagram, .unixPath("client.sock")), credentials: nil, from: socket)) { error in
            XCTAssertTrue("\(error)".contains("no credentials"), "\(error)")
        }
    }
}

/// The lines a logger wrote, kept in memory.
final class CapturedLog: Sendable {
    private let captured = ConditionLock<[String]>([])

    /// A logger that writes here.
    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    /// Every line so far.
    var lines: [String] { captured.withLock { $0 } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            log.captured.withLock { $0.append("\(event.level): \(event.message)") }
        }
    }
}
