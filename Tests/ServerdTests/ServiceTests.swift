import FamilyServer
import Glibc
import XCTest

/// The services over every family, through the real serverd binary.
final class ServiceTests: XCTestCase {
    private let stampLine = #"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\] "#

    func testEchoAndStampOnEveryStreamFamily() throws {
        let dir = try TemporaryDirectory()
        let abstract = "serverd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let serverd = try ServerdProcess([
            "--listen", "echo@tcp://127.0.0.1:0", "--listen", "stamp@tcp://[::1]:0",
            "--listen", "echo@unix:\(dir.path("echo.sock"))", "--listen", "stamp@unix:@\(abstract)",
        ], directory: dir)
        let lines = try serverd.waitForListening(4)
        let addresses = lines.map { String($0[$0.index(after: $0.firstIndex(of: "@")!)...]) }

        let echo = try TestClient.connect(addresses[0])
        try echo.send("hello\nworld")
        XCTAssertEqual(try echo.receive(count: 11), Array("hello\nworld".utf8))

        let stamp = try TestClient.connect(addresses[1])
        try stamp.send("one\r\ntwo\n")
        XCTAssertNotNil(try stamp.receiveLine().range(of: stampLine + "one\n$", options: .regularExpression))
        XCTAssertNotNil(try stamp.receiveLine().range(of: stampLine + "two\n$", options: .regularExpression))

        let unixEcho = try TestClient.connect(addresses[2])
        try unixEcho.send([0xff, 0x00, 0x0a])
        XCTAssertEqual(try unixEcho.receive(count: 3), [0xff, 0x00, 0x0a])

        let abstractStamp = try TestClient.connect("unix:@\(abstract)")
        try abstractStamp.send([0xc3, 0x28, 0x0a])  // not UTF-8: comes back byte for byte
        let reply = try abstractStamp.receive(count: 30)
        XCTAssertEqual(Array(reply.suffix(3)), [0xc3, 0x28, 0x0a])

        for client in [echo, stamp, unixEcho, abstractStamp] { client.socket.close() }
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("echo.sock")), "socket file removed on stop")
    }

    func testDatagramServices() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--listen", "echo@udp://127.0.0.1:0", "--listen", "stamp@udp://[::1]:0",
            "--listen", "daytime@unixgram:\(dir.path("day.sock"))", "--listen", "discard@udp://127.0.0.1:0",
        ], directory: dir)
        let lines = try serverd.waitForListening(4)
        XCTAssertEqual(try datagramRoundTrip("udp://127.0.0.1:\(try serverd.port(0))", Array("ping".utf8)), Array("ping".utf8))
        let stamped = try XCTUnwrap(try datagramRoundTrip("udp://[::1]:\(try serverd.port(1))", Array("x\r\n".utf8)))
        XCTAssertNotNil(String(decoding: stamped, as: UTF8.self).range(of: stampLine + "x$", options: .regularExpression))
        let day = try XCTUnwrap(try datagramRoundTrip("unixgram:\(dir.path("day.sock"))", Array("?".utf8)))
        XCTAssertEqual(Array(day.suffix(2)), [0x0d, 0x0a])
        XCTAssertNil(try datagramRoundTrip("udp://127.0.0.1:\(try serverd.port(3))", Array("x".utf8), timeout: 0.5))
        XCTAssertEqual(lines.count, 4)
        serverd.send(SIGINT)
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }

    func testDaytimeAndDiscardStreams() throws {
        let serverd = try ServerdProcess(["--listen", "daytime@tcp://127.0.0.1:0", "--listen", "discard@tcp://127.0.0.1:0"])
        try serverd.waitForListening(2)
        let day = try TestClient.connect("tcp://127.0.0.1:\(try serverd.port(0))")
        let text = String(decoding: try day.receiveAll(), as: UTF8.self)
        XCTAssertNotNil(text.range(of: #"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\r\n$"#, options: .regularExpression), text)
        let discard = try TestClient.connect("tcp://127.0.0.1:\(try serverd.port(1))")
        try discard.send(String(repeating: "x", count: 100_000))
        try discard.finishSending()
        XCTAssertEqual(try discard.receiveAll(), [])
    }

    func testEmbeddedDefaultSet() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([], directory: dir)
        let lines = try serverd.waitForListening(4)
        XCTAssertEqual(lines, [
            "stamp@tcp://127.0.0.1:21568", "stamp@tcp://[::1]:21568", "echo@udp://127.0.0.1:21568",
            "echo@unix:\(dir.path("serverd.sock"))",
        ])
        // A new connection per line, and one long connection.
        for word in ["a", "b"] {
            let client = try TestClient.connect("tcp://127.0.0.1:21568")
            try client.send("\(word)\n")
            XCTAssertTrue(try client.receiveLine().hasSuffix("] \(word)\n"))
        }
        let long = try TestClient.connect("tcp://[::1]:21568")
        for word in ["c", "d", "e"] {
            try long.send("\(word)\n")
            XCTAssertTrue(try long.receiveLine().hasSuffix("] \(word)\n"))
        }
        long.socket.close()
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }

    /// A relative Unix socket path is taken from the working directory at start and printed
    /// absolute, so that `--daemon` (which moves to `/`) binds where the user meant.
    func testRelativeUnixPathIsMadeAbsolute() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess(["--listen", "echo@unix:rel.sock"], directory: dir)
        XCTAssertEqual(try serverd.waitForListening(1), ["echo@unix:\(dir.path("rel.sock"))"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path("rel.sock")))
        serverd.send(SIGTERM)
        XCTAssertEqual(try serverd.waitForExit(), 0)
    }
}
