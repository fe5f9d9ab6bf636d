import FamilyServer
import Glibc
import XCTest

/// BufferedReader (a handler's `rfile`): `readline` with and without a limit, `read(n)`,
/// `readAvailable`, `readToEnd`, over a connected socket pair and over a datagram's bytes.
final class BufferedReaderTests: XCTestCase {
    /// A connected Unix stream pair: the reader's socket and the peer the test writes to.
    private func makePair() throws -> (reader: Socket, peer: Socket) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw SocketError("socketpair", errno: errno)
        }
        let reader = try Socket(adopting: fds[0])
        let peer = try Socket(adopting: fds[1])
        try reader.setTimeouts(receive: Client.timeout, send: Client.timeout)
        try peer.setTimeouts(receive: Client.timeout, send: Client.timeout)
        return (reader, peer)
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: - readline

    func testReadlineReturnsLinesWithTheirLF() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("one\ntwo\n\nthree"))
        try peer.shutdown(Int32(SHUT_WR))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(), bytes("one\n"))
        XCTAssertEqual(try reader.readline(), bytes("two\n"))
        XCTAssertEqual(try reader.readline(), bytes("\n"))
        XCTAssertEqual(try reader.readline(), bytes("three"), "the last line comes without LF at the end of input")
        XCTAssertEqual(try reader.readline(), [], "empty once the input ended")
        XCTAssertEqual(try reader.readline(), [])
    }

    func testReadlineWaitsForTheRestOfALine() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("hel"))
        let writer = try TestThread {
            usleep(50_000)
            try? peer.sendAll(Array("lo\nnext".utf8))
            try? peer.shutdown(Int32(SHUT_WR))
        }
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(), bytes("hello\n"))
        XCTAssertEqual(try reader.readline(), bytes("next"))
        XCTAssertTrue(writer.join())
    }

    func testReadlineOfALineLongerThanOneChunk() throws {
        let (socket, peer) = try makePair()
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 3 * BufferedReader.maxChunkSize + 17) + [0x0A]
        let writer = try TestThread {
            try? peer.sendAll(long + Array("tail\n".utf8))
            try? peer.shutdown(Int32(SHUT_WR))
        }
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(), long)
        XCTAssertEqual(try reader.readline(), bytes("tail\n"))
        XCTAssertTrue(writer.join())
    }

    func testReadlineLimitCutsTheLineAndKeepsTheRest() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("abcdef\nab\ncd"))
        try peer.shutdown(Int32(SHUT_WR))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(limit: 3), bytes("abc"))
        XCTAssertEqual(try reader.readline(limit: 3), bytes("def"))
        XCTAssertEqual(try reader.readline(limit: 3), bytes("\n"))
        XCTAssertEqual(try reader.readline(limit: 3), bytes("ab\n"), "a limit equal to the line with its LF returns it whole")
        XCTAssertEqual(try reader.readline(limit: 3), bytes("cd"))
        XCTAssertEqual(try reader.readline(limit: 3), [])
    }

    func testReadlineLimitZeroReadsNothing() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("abc\n"))
        try peer.shutdown(Int32(SHUT_WR))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(limit: 0), [])
        XCTAssertEqual(try reader.readline(), bytes("abc\n"))
    }

    func testReadlineLimitAcrossChunks() throws {
        let (socket, peer) = try makePair()
        let limit = BufferedReader.maxChunkSize + 100
        let long = [UInt8](repeating: UInt8(ascii: "y"), count: 2 * BufferedReader.maxChunkSize)
        let writer = try TestThread {
            try? peer.sendAll(long + [0x0A])
            try? peer.shutdown(Int32(SHUT_WR))
        }
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(limit: limit), Array(long[0..<limit]))
        XCTAssertEqual(try reader.readline(limit: limit), Array(long[limit...]) + [0x0A])
        XCTAssertEqual(try reader.readline(limit: limit), [])
        XCTAssertTrue(writer.join())
    }

    /// As in Python, a negative limit is no limit.
    func testReadlineNegativeLimitIsNoLimit() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("abcdef\nxyz"))
        try peer.shutdown(Int32(SHUT_WR))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(limit: -1), bytes("abcdef\n"))
        XCTAssertEqual(try reader.readline(limit: -1), bytes("xyz"))
    }

    // MARK: - read, readAvailable, readToEnd

    func testReadWaitsForCountBytes() throws {
        let (socket, peer) = try makePair()
        let payload = (0..<(2 * BufferedReader.maxChunkSize + 5)).map { UInt8(truncatingIfNeeded: $0) }
        let writer = try TestThread {
            // In three pieces with pauses, so that read(n) needs several receives.
            try? peer.sendAll(Array(payload[0..<10]))
            usleep(20_000)
            try? peer.sendAll(Array(payload[10..<BufferedReader.maxChunkSize]))
            usleep(20_000)
            try? peer.sendAll(Array(payload[BufferedReader.maxChunkSize...]))
            try? peer.shutdown(Int32(SHUT_WR))
        }
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.read(0), [])
        XCTAssertEqual(try reader.read(3), Array(payload[0..<3]))
        XCTAssertEqual(try reader.read(2 * BufferedReader.maxChunkSize), Array(payload[3..<(2 * BufferedReader.maxChunkSize + 3)]))
        XCTAssertEqual(try reader.read(100), Array(payload[(2 * BufferedReader.maxChunkSize + 3)...]), "short only at the end")
        XCTAssertEqual(try reader.read(100), [])
        XCTAssertTrue(writer.join())
    }

    func testReadAfterReadline() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("HEAD\r\nbody-bytes"))
        try peer.shutdown(Int32(SHUT_WR))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(), bytes("HEAD\r\n"))
        XCTAssertEqual(reader.bufferedCount, 10)
        XCTAssertEqual(try reader.read(4), bytes("body"))
        XCTAssertEqual(try reader.readToEnd(), bytes("-bytes"))
    }

    func testReadAvailableReturnsWhatIsBufferedOrWaits() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("line\nrest"))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readline(), bytes("line\n"))
        XCTAssertEqual(try reader.readAvailable(), bytes("rest"), "what is buffered, without waiting for more")
        try peer.sendAll(bytes("more"))
        XCTAssertEqual(try reader.readAvailable(), bytes("more"), "nothing buffered: waits for the next chunk")
        try peer.shutdown(Int32(SHUT_WR))
        XCTAssertEqual(try reader.readAvailable(), [], "empty only at the end")
    }

    func testReadToEnd() throws {
        let (socket, peer) = try makePair()
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let writer = try TestThread {
            try? peer.sendAll(payload)
            try? peer.shutdown(Int32(SHUT_WR))
        }
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.readToEnd(), payload)
        XCTAssertEqual(try reader.readToEnd(), [])
        XCTAssertTrue(writer.join())
    }

    /// As in Python, read(-1) reads to the end.
    func testReadNegativeCountReadsToEnd() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("all of it"))
        try peer.shutdown(Int32(SHUT_WR))
        let reader = BufferedReader(socket: socket)
        XCTAssertEqual(try reader.read(-1), bytes("all of it"))
    }

    func testReceiveTimeoutIsAnError() throws {
        let (socket, peer) = try makePair()
        defer { peer.close() }  // open, and silent
        try socket.setTimeouts(receive: 0.05, send: nil)
        let reader = BufferedReader(socket: socket)
        XCTAssertThrowsError(try reader.readline()) { error in
            XCTAssertEqual((error as? SocketError)?.errno, EAGAIN)
        }
    }

    func testBeforeBlockingRunsBeforeEveryWait() throws {
        let (socket, peer) = try makePair()
        try peer.sendAll(bytes("a\n"))
        let reader = BufferedReader(socket: socket)
        let calls = EventLog()
        reader.beforeBlocking = { calls.append("wait") }
        XCTAssertEqual(try reader.readline(), bytes("a\n"))
        XCTAssertEqual(calls.all.count, 1)
        try peer.sendAll(bytes("b\nc\n"))
        XCTAssertEqual(try reader.readline(), bytes("b\n"))
        XCTAssertEqual(try reader.readline(), bytes("c\n"), "a buffered line needs no wait")
        XCTAssertEqual(calls.all.count, 2)
    }

    // MARK: - Over a datagram's bytes

    func testReaderOverBytes() throws {
        let reader = BufferedReader(bytes: bytes("first\nsecond\nlast"))
        XCTAssertEqual(reader.bufferedCount, 17)
        XCTAssertEqual(try reader.readline(), bytes("first\n"))
        XCTAssertEqual(try reader.read(3), bytes("sec"))
        XCTAssertEqual(try reader.readline(limit: 2), bytes("on"))
        XCTAssertEqual(try reader.readline(), bytes("d\n"))
        XCTAssertEqual(try reader.read(100), bytes("last"))
        XCTAssertEqual(try reader.readline(), [])
        XCTAssertEqual(try reader.readToEnd(), [])
        XCTAssertEqual(try reader.readAvailable(), [])
    }

    func testReaderOverNoBytes() throws {
        let reader = BufferedReader(bytes: [])
        XCTAssertEqual(try reader.readline(), [])
        XCTAssertEqual(try reader.read(1), [])
        XCTAssertEqual(try reader.readToEnd(), [])
    }
}
