import FamilyServer
import Glibc
import XCTest

/// Unix socket files: the server removes the file it created on close (never an adopted one, and
/// never a file that replaced its socket); a stale socket file is replaced, a live one is "in use",
/// and anything that is not a socket (regular file, symlink, directory) is never deleted. Also
/// path lengths (107 bytes fit, 108 are "too long"), the abstract namespace, and `socketMode`.
final class UnixSocketFileTests: FamilyServerTestCase {
    private let transports: [SocketAddress.Transport] = [.stream, .datagram]

    private func makeServer(at address: SocketAddress, mode: mode_t? = nil, bindAndActivate: Bool = true) throws -> BaseServer {
        let server: BaseServer
        switch address.transport {
        case .stream:
            server = try StreamServer(address: address, handler: StreamEchoHandler.self, bindAndActivate: bindAndActivate && mode == nil)
        case .datagram:
            server = try DatagramServer(address: address, handler: DatagramEchoHandler.self, bindAndActivate: bindAndActivate && mode == nil)
        }
        if let mode {
            server.socketMode = mode
            try server.bindAndActivate()
        }
        return server
    }

    private func echo(_ server: BaseServer) throws {
        try runServer(server) { address in
            switch address.transport {
            case .stream: try streamEchoClient(address)
            case .datagram: try datagramEchoClient(address)
            }
        }
    }

    /// Leaves a socket file at `path` that nothing serves.
    private func makeStaleSocketFile(_ path: String, _ transport: SocketAddress.Transport) throws {
        let socket = try Socket(family: AF_UNIX, transport: transport)
        try socket.bind(to: SocketAddress(transport, .unixPath(path)))
        if transport == .stream { try socket.listen(backlog: 1) }
        socket.close()
        XCTAssertEqual(fileType(path), S_IFSOCK)
    }

    private func assertInUse(_ address: SocketAddress, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try makeServer(at: address), file: file, line: line) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE, "\(error)", file: file, line: line)
        }
    }

    // MARK: - Removal on close

    func testServerCloseRemovesTheSocketFileItCreated() throws {
        for transport in transports {
            let server = try makeServer(at: address(.unixPath, transport))
            let socketPath = try XCTUnwrap(server.serverAddress.path)
            XCTAssertEqual(fileType(socketPath), S_IFSOCK)
            try echo(server)
            XCTAssertNil(fileType(socketPath), "\(transport)")
        }
    }

    func testServerCloseIsIdempotent() throws {
        for family in TestFamily.allCases where family != .ipv6 {
            for transport in transports {
                let server = try makeServer(at: address(family, transport))
                server.serverClose()
                server.serverClose()
                XCTAssertEqual(server.fileno, -1)
                if let socketPath = server.serverAddress.path {
                    // A new file at the path after the first close survives the second.
                    try writeFile(socketPath, "new")
                    server.serverClose()
                    XCTAssertEqual(readFile(socketPath), "new")
                }
            }
        }
    }

    func testServerCloseLeavesAnAdoptedSocketFile() throws {
        for transport in transports {
            let requested = address(.unixPath, transport)
            let socket = try Socket(family: AF_UNIX, transport: transport)
            try socket.bind(to: requested)
            if transport == .stream { try socket.listen(backlog: 8) }
            let server: BaseServer = transport == .stream
                ? try StreamServer(adopting: socket, handler: StreamEchoHandler.self)
                : try DatagramServer(adopting: socket, handler: DatagramEchoHandler.self)
            try echo(server)
            XCTAssertEqual(fileType(requested.path!), S_IFSOCK, "\(transport): the adopted socket's file was removed")
        }
    }

    func testServerCloseLeavesAFileThatReplacedItsSocket() throws {
        for transport in transports {
            let server = try makeServer(at: address(.unixPath, transport))
            let socketPath = server.serverAddress.path!
            unlink(socketPath)
            try writeFile(socketPath, "someone else's")
            server.serverClose()
            XCTAssertEqual(readFile(socketPath), "someone else's", "\(transport)")
        }
    }

    /// `setMode` (a daemon's reload of the socket mode) changes the socket file the server created, and never what
    /// replaced it: a symlink put in its place is not followed, its target keeps its mode.
    func testSetModeChangesOnlyTheServersOwnSocketFile() throws {
        let server = try makeServer(at: address(.unixPath, .stream), mode: 0o600)
        defer { server.serverClose() }
        let path = server.serverAddress.path!
        let file = try XCTUnwrap(server.createdSocketFile)
        try file.setMode(0o660)
        var info = stat()
        XCTAssertEqual(lstat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o660)

        let target = path + ".target"
        try writeFile(target, "not the socket")
        XCTAssertEqual(chmod(target, 0o600), 0)
        XCTAssertEqual(unlink(path), 0)
        XCTAssertEqual(symlink(target, path), 0)
        XCTAssertThrowsError(try file.setMode(0o666)) { error in
            XCTAssertTrue([ELOOP, ESTALE].contains((error as? SocketError)?.errno ?? 0), "\(error)")
        }
        XCTAssertEqual(stat(target, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o600, "the symlink's target keeps its mode")
        unlink(path)
        unlink(target)
    }

    /// Another process's socket (one that takes no lock) put where the server's was is left alone.
    func testServerCloseLeavesASocketThatReplacedItsOwn() throws {
        let requested = address(.unixPath, .stream)
        let first = try makeServer(at: requested)
        unlink(requested.path!)
        let other = try Socket(family: AF_UNIX, transport: .stream)
        defer { other.close() }
        try other.bind(to: requested)
        first.serverClose()
        XCTAssertEqual(fileType(requested.path!), S_IFSOCK)
        XCTAssertNil(fileType(requested.path! + ".lock"), "the lock file goes with the server")
    }

    // MARK: - What is at the path before binding

    func testStaleSocketFileIsReplaced() throws {
        for transport in transports {
            for staleTransport in transports {
                let requested = address(.unixPath, transport)
                try makeStaleSocketFile(requested.path!, staleTransport)
                let server = try makeServer(at: requested)
                try echo(server)
                XCTAssertNil(fileType(requested.path!))
            }
        }
    }

    func testLiveSocketFileIsNotReplaced() throws {
        for transport in transports {
            let requested = address(.unixPath, transport)
            let live = try makeServer(at: requested)
            assertInUse(requested)
            // The live server still has its file and serves.
            XCTAssertEqual(fileType(requested.path!), S_IFSOCK)
            try echo(live)
        }
    }

    /// A path served by a socket of the other type (stream vs datagram) is in use too.
    func testLiveSocketOfTheOtherTypeIsNotReplaced() throws {
        for transport in transports {
            let requested = address(.unixPath, transport)
            let live = try makeServer(at: SocketAddress(transport == .stream ? .datagram : .stream, requested.endpoint))
            assertInUse(requested)
            XCTAssertEqual(fileType(requested.path!), S_IFSOCK)
            try echo(live)
        }
    }

    /// A live stream socket whose backlog is full is in use; checking it must not wait for room.
    func testLiveSocketWithAFullBacklogIsNotReplaced() throws {
        let requested = address(.unixPath, .stream)
        let listener = try Socket(family: AF_UNIX, transport: .stream)
        defer { listener.close() }
        try listener.bind(to: requested)
        try listener.listen(backlog: 0)
        var queued: [Socket] = []
        defer { queued.forEach { $0.close() } }
        while queued.count < 10 {
            let client = try Socket(family: AF_UNIX, transport: .stream)
            queued.append(client)
            try client.setNonBlocking(true)
            do {
                try client.connect(to: requested)
            } catch {
                XCTAssertEqual(error.errno, EAGAIN)
                break
            }
        }
        let outcome = EventLog()
        let attempt = try TestThread {
            do {
                let server = try StreamServer(address: requested, handler: StreamEchoHandler.self)
                server.serverClose()
                outcome.append("bound")
            } catch {
                outcome.append("\((error as? SocketError)?.errno ?? -1)")
            }
        }
        XCTAssertTrue(attempt.join(), "creating the server waited for room in the live socket's backlog")
        XCTAssertEqual(outcome.all, ["\(EADDRINUSE)"])
        XCTAssertEqual(fileType(requested.path!), S_IFSOCK)
    }

    func testRegularFileIsNeverDeleted() throws {
        for transport in transports {
            let requested = address(.unixPath, transport)
            try writeFile(requested.path!, "precious")
            XCTAssertThrowsError(try makeServer(at: requested)) { error in
                XCTAssertEqual((error as? SocketError)?.errno, EADDRINUSE)
                XCTAssertTrue("\(error)".contains("not a socket"), "\(error)")
            }
            XCTAssertEqual(readFile(requested.path!), "precious")
        }
    }

    func testSymlinkIsNeverDeleted() throws {
        for transport in transports {
            let target = path(uniqueName("target"))
            try writeFile(target, "target")
            let staleSocket = path(uniqueName("stale.sock"))
            try makeStaleSocketFile(staleSocket, transport)
            for destination in [target, path("dangling"), staleSocket] {
                let requested = address(.unixPath, transport)
                XCTAssertEqual(symlink(destination, requested.path!), 0)
                assertInUse(requested)
                XCTAssertEqual(fileType(requested.path!), S_IFLNK, "the symlink to \(destination) was removed")
            }
            XCTAssertEqual(readFile(target), "target")
            XCTAssertEqual(fileType(staleSocket), S_IFSOCK, "the symlink was followed")
        }
    }

    func testDirectoryIsNeverDeleted() throws {
        for transport in transports {
            let requested = address(.unixPath, transport)
            XCTAssertEqual(mkdir(requested.path!, 0o700), 0)
            try writeFile(requested.path! + "/inside", "x")
            assertInUse(requested)
            XCTAssertEqual(readFile(requested.path! + "/inside"), "x")
        }
    }

    // MARK: - Path lengths

    /// A path of exactly 107 bytes (the most `sun_path` holds with its NUL) binds and serves.
    func testPathOf107BytesBinds() throws {
        for transport in transports {
            let prefix = path("")
            let longPath = prefix + String(repeating: transport == .stream ? "s" : "d", count: 107 - prefix.utf8.count)
            XCTAssertEqual(longPath.utf8.count, 107)
            let server = try makeServer(at: SocketAddress(transport, .unixPath(longPath)))
            XCTAssertEqual(server.serverAddress.path, longPath)
            XCTAssertEqual(try server.socket.localAddress().path, longPath)
            try echo(server)
            XCTAssertNil(fileType(longPath))
        }
    }

    /// A longer path is an error that says "too long", whether it comes as text or as a value.
    func testPathOf108BytesIsTooLong() throws {
        for transport in transports {
            let prefix = path("")
            let longPath = prefix + String(repeating: "x", count: 108 - prefix.utf8.count)
            let scheme = transport == .stream ? "unix" : "unixgram"
            XCTAssertThrowsError(try SocketAddress(parsing: "\(scheme):\(longPath)")) { error in
                XCTAssertTrue("\(error)".contains("too long"), "\(error)")
            }
            let before = Descriptors()
            XCTAssertThrowsError(try makeServer(at: SocketAddress(transport, .unixPath(longPath)))) { error in
                XCTAssertTrue("\(error)".contains("too long"), "\(error)")
            }
            XCTAssertThrowsError(try makeServer(at: SocketAddress(transport, .unixAbstract(Array(repeating: 0x61, count: 108))))) { error in
                XCTAssertTrue("\(error)".contains("too long"), "\(error)")
            }
            XCTAssertTrue(Descriptors().isWithin(before), "\(Descriptors()), \(before) before: \(openDescriptors())")
            XCTAssertEqual(procEntries(directory), [], "nothing was created under a truncated name")
        }
    }

    /// A path with a NUL byte would bind the name cut at the NUL: it is an error instead.
    func testPathWithANulByteIsAnError() throws {
        for transport in transports {
            XCTAssertThrowsError(try makeServer(at: SocketAddress(transport, .unixPath(path("cut\0rest"))))) { error in
                XCTAssertEqual((error as? SocketError)?.errno, EINVAL, "\(error)")
                XCTAssertTrue("\(error)".contains("NUL"), "\(error)")
            }
            XCTAssertEqual(procEntries(directory), [], "a socket was bound under the name cut at the NUL")
        }
    }

    // MARK: - Abstract namespace

    func testAbstractNameOf107BytesBinds() throws {
        for transport in transports {
            let stem = uniqueName("abstract")
            let name = stem + String(repeating: "a", count: 107 - stem.utf8.count)
            let server = try makeServer(at: SocketAddress(transport, .unixAbstract(Array(name.utf8))))
            XCTAssertEqual(try server.socket.localAddress().endpoint, .unixAbstract(Array(name.utf8)))
            XCTAssertEqual(server.serverAddress.description, "\(transport == .stream ? "unix" : "unixgram"):@\(name)")
            try echo(server)
        }
    }

    func testAbstractServerTouchesNoFile() throws {
        for transport in transports {
            let name = uniqueName("abstract")
            let server = try makeServer(at: try SocketAddress(parsing: "\(transport == .stream ? "unix" : "unixgram"):@\(name)"))
            XCTAssertEqual(try server.socket.localAddress(), server.serverAddress)
            XCTAssertNil(fileType(name))
            XCTAssertNil(fileType("/" + name))
            try echo(server)
            // The name is free again once the server closed.
            try echo(try makeServer(at: server.serverAddress))
        }
    }

    // MARK: - Mode

    func testSocketModeIsApplied() throws {
        for transport in transports {
            for mode: mode_t in [0o600, 0o660, 0o666] {
                let server = try makeServer(at: address(.unixPath, transport), mode: mode)
                var info = stat()
                XCTAssertEqual(lstat(server.serverAddress.path!, &info), 0)
                XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK)
                XCTAssertEqual(info.st_mode & 0o777, mode)
                try echo(server)
                XCTAssertEqual(procEntries(directory), [], "a file was left behind")
            }
        }
    }
}
