import FamilyServer
import Glibc
import XCTest

/// Handing a Unix socket and its file from one server to another, as a binary upgrade or systemd's fd store does:
/// the first server relinquishes the file (``BaseServer/leaveSocketFile()``), the second takes it over with the
/// socket (``UnixSocketFile/adopt(_:path:lockDescriptor:)``, ``BaseServer/takeOwnership(of:)``) and removes it at its
/// close. The lock (`PATH.lock`) passes as a descriptor and is never free meanwhile: a third server is refused
/// throughout. And fd names (``FileDescriptorName``) are valid for systemd and tell texts apart.
final class SocketHandOverTests: FamilyServerTestCase {
    func testSocketFileAndLockPassToTheServerThatTakesTheSocketOver() throws {
        for transport in [SocketAddress.Transport.stream, .datagram] {
            let requested = address(.unixPath, transport)
            let path = try XCTUnwrap(requested.path)
            let first: BaseServer = transport == .stream
                ? try StreamServer(address: requested, handler: StreamEchoHandler.self)
                : try DatagramServer(address: requested, handler: DatagramEchoHandler.self)
            let file = try XCTUnwrap(first.createdSocketFile)
            // What a hand-over passes: duplicates of the socket and of the locked lock file.
            let socketCopy = dup(first.fileno)
            let lockCopy = dup(file.lockDescriptor)
            XCTAssertGreaterThanOrEqual(socketCopy, 0)
            XCTAssertGreaterThanOrEqual(lockCopy, 0)

            first.leaveSocketFile()
            first.serverClose()
            XCTAssertEqual(fileType(path), S_IFSOCK, "\(transport): the relinquished file stays")
            XCTAssertEqual(fileType(path + ".lock"), S_IFREG)
            assertRefused(requested, "while only the passed copy of the lock holds it")

            let socket = try Socket(adopting: socketCopy)
            let taken = try UnixSocketFile.adopt(socket, path: path, lockDescriptor: lockCopy)
            let second: BaseServer = transport == .stream
                ? try StreamServer(adopting: socket, handler: StreamEchoHandler.self)
                : try DatagramServer(adopting: socket, handler: DatagramEchoHandler.self)
            second.takeOwnership(of: taken)
            assertRefused(requested, "while the second server holds the lock")
            try runServer(second) { address in
                switch address.transport {
                case .stream: try streamEchoClient(address)
                case .datagram: try datagramEchoClient(address)
                }
            }
            XCTAssertNil(fileType(path), "\(transport): the server that took the file over removes it")
            XCTAssertNil(fileType(path + ".lock"))
        }
    }

    func testTakingOverWithoutALockLocksAnewAndAMissingFileIsNotTakenOver() throws {
        let requested = address(.unixPath, .stream)
        let path = try XCTUnwrap(requested.path)
        let socket = try Socket(family: AF_UNIX, transport: .stream)
        defer { socket.close() }
        try socket.bind(to: requested)
        try socket.listen(backlog: 4)
        let taken = try UnixSocketFile.adopt(socket, path: path, lockDescriptor: nil)
        assertRefused(requested, "the lock taken anew")
        try taken.remove()
        XCTAssertNil(fileType(path))
        XCTAssertThrowsError(try UnixSocketFile.adopt(socket, path: path, lockDescriptor: nil)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, ENOENT, "\(error)")
        }
        XCTAssertThrowsError(try UnixSocketFile.adopt(socket, path: path + "-elsewhere", lockDescriptor: nil)) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EINVAL, "\(error): not bound there")
        }
    }

    func testFileDescriptorNamesAreValidAndDistinct() throws {
        let texts = [
            "tcp://127.0.0.1:7000", "tcp://127.0.0.1:7001", "unix:/run/a b%c:d", "echo@udp://[::1]:0 (#2)",
            "unix:/" + String(repeating: "x", count: 104), "unix:/" + String(repeating: "x", count: 103) + "y",
            "unix:/" + String(repeating: ":", count: 100), "unix:/" + String(repeating: ":", count: 99) + "%",
        ]
        var names = Set<String>()
        for text in texts {
            let name = FileDescriptorName.encoding(text, prefix: "serverd+")
            XCTAssertTrue(name.hasPrefix("serverd+"), name)
            XCTAssertLessThanOrEqual(name.utf8.count, 255, name)
            XCTAssertTrue(name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }, name)
            XCTAssertEqual(name, FileDescriptorName.encoding(text, prefix: "serverd+"), "the same text, the same name")
            names.insert(name)
        }
        XCTAssertEqual(names.count, texts.count, "distinct texts, distinct names: \(names)")
        XCTAssertEqual(FileDescriptorName.encoding("tcp://127.0.0.1:7000", prefix: "p+"), "p+tcp%3A//127.0.0.1%3A7000")
    }

    /// A third server on the path (of the same socket type) is refused with EADDRINUSE.
    private func assertRefused(_ address: SocketAddress, _ when: String, file: StaticString = #filePath, line: UInt = #line) {
        let attempt = { () throws -> BaseServer in
            address.transport == .stream
                ? try StreamServer(address: address, handler: StreamEchoHandler.self)
                : try DatagramServer(address: address, handler: DatagramEchoHandler.self)
        }
        XCTAssertThrowsError(try attempt(), when, file: file, line: line) {
            XCTAssertEqual(($0 as? SocketError)?.errno, EADDRINUSE, "\($0)", file: file, line: line)
        }
    }
}
