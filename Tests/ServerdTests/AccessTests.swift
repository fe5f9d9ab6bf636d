import FamilyServer
import Foundation
import Glibc
import XCTest

/// `--allow`/`--deny` (inet, both families) and `--allow-uid`/`--allow-gid` (Unix stream and
/// datagram): an admitted client is served, a refused one sees its connection closed with no
/// data (its datagram dropped), and serverd logs the refusal.
final class AccessTests: XCTestCase {
    // MARK: - Source address rules

    func testDenyIPv4BlockRefusesIPv4AndServesIPv6() throws {
        let serverd = try ServerdProcess(["--deny", "127.0.0.0/8", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://[::1]:0"])
        try serverd.waitForListening(2)
        let refused = try TestClient.connect(serverd.address(0))
        try? refused.send("nope")
        XCTAssertTrue(refused.isClosedWithoutData(), "127.0.0.1 is denied")
        try serverd.waitForLog("refused")
        XCTAssertTrue(serverd.stderr.contains("127.0.0.1"), "the refusal names the client:\n\(serverd.stderr)")
        XCTAssertTrue(try TestClient.connect(serverd.address(1)).echoes("v6"), "::1 is not in 127.0.0.0/8")
        try serverd.stop()
    }

    func testAllowIPv6OnlyRefusesIPv4() throws {
        let serverd = try ServerdProcess(["--allow", "::1/128", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://[::1]:0"])
        try serverd.waitForListening(2)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).isClosedWithoutData(), "127.0.0.1 is not allowed")
        try serverd.waitForLog("refused")
        XCTAssertTrue(try TestClient.connect(serverd.address(1)).echoes("v6"))
        try serverd.stop()
    }

    func testDenyIPv6RefusesIPv6AndServesIPv4() throws {
        let serverd = try ServerdProcess(["--deny", "::1/128", "--listen", "echo@tcp://127.0.0.1:0", "--listen", "echo@tcp://[::1]:0"])
        try serverd.waitForListening(2)
        XCTAssertTrue(try TestClient.connect(serverd.address(1)).isClosedWithoutData(), "::1 is denied")
        try serverd.waitForLog("refused")
        XCTAssertTrue(serverd.stderr.contains("::1"), serverd.stderr)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).echoes("v4"))
        try serverd.stop()
    }

    func testDenyWinsOverAllow() throws {
        let serverd = try ServerdProcess(["--allow", "127.0.0.0/8,::1/128", "--deny", "127.0.0.1/32", "--listen", "echo@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).isClosedWithoutData(), "deny 127.0.0.1/32 wins")
        // Another loopback source inside the allowed /8 and outside the denied /32 is served.
        let other = try TestClient.connect(serverd.address(0), from: "tcp://127.0.0.2:0")
        XCTAssertTrue(try other.echoes("ok"))
        other.close()
        try serverd.stop()
    }

    func testAllowSingleIPv4Source() throws {
        let serverd = try ServerdProcess(["--allow", "127.0.0.2", "--listen", "stamp@tcp://127.0.0.1:0"])
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect(serverd.address(0), from: "tcp://127.0.0.2:0").roundTrip("in").hasSuffix("] in\n"))
        XCTAssertTrue(try TestClient.connect(serverd.address(0)).isClosedWithoutData(), "127.0.0.1 is outside 127.0.0.2/32")
        try serverd.stop()
    }

    /// On a dual-stack wildcard listener an IPv4 client arrives as ::ffff:127.0.0.1; IPv4 rules still apply to it.
    func testIPv4RulesApplyToMappedAddressesOnDualStackListener() throws {
        let serverd = try ServerdProcess(["--deny", "127.0.0.0/8", "--listen", "echo@tcp://[::]:0"])
        try serverd.waitForListening(1)
        let port = try serverd.port(0)
        XCTAssertTrue(try TestClient.connect("tcp://127.0.0.1:\(port)").isClosedWithoutData(), "mapped 127.0.0.1 is denied")
        XCTAssertTrue(try TestClient.connect("tcp://[::1]:\(port)").echoes("six"))
        try serverd.stop()
    }

    func testUDPDatagramFromDeniedSourceIsDroppedAndLogged() throws {
        let serverd = try ServerdProcess(["--deny", "127.0.0.0/8", "--listen", "echo@udp://127.0.0.1:0", "--listen", "echo@udp://[::1]:0"])
        try serverd.waitForListening(2)
        XCTAssertNil(try datagramRoundTrip("udp://127.0.0.1:\(try serverd.port(0))", Array("x".utf8), timeout: 0.5))
        try serverd.waitForLog("dropped")
        XCTAssertEqual(try datagramRoundTrip("udp://[::1]:\(try serverd.port(1))", Array("y".utf8)), Array("y".utf8))
        try serverd.stop()
    }

    /// Rules are per listener in a `[[listener]]` table.
    func testPerListenerRulesFromConfig() throws {
        let dir = try TemporaryDirectory()
        let config = try writeConfig(dir, """
            [[listener]]
            listen = "echo@tcp://127.0.0.1:0"
            deny = ["127.0.0.1/32"]

            [[listener]]
            listen = "stamp@tcp://127.0.0.1:0"

            [[listener]]
            listen = "daytime@tcp://127.0.0.1:0"
            deny = []
            """)
        let serverd = try ServerdProcess(["--config", config, "--deny", "127.0.0.0/8", "--listen", "discard@tcp://127.0.0.1:0"], directory: dir)
        try serverd.waitForListening(4)
        let lines = serverd.listeningLines
        func address(_ service: String) throws -> String {
            try XCTUnwrap(lines.first { $0.hasPrefix(service + "@") }.map(addressPart), "\(service) in \(lines)")
        }
        XCTAssertTrue(try TestClient.connect(try address("echo")).isClosedWithoutData(), "the table's own deny")
        XCTAssertTrue(try TestClient.connect(try address("stamp")).isClosedWithoutData(), "the command line's deny fills in")
        XCTAssertTrue(try TestClient.connect(try address("discard")).isClosedWithoutData(), "the command line's deny")
        let day = String(decoding: try TestClient.connect(try address("daytime")).receiveAll(), as: UTF8.self)
        XCTAssertTrue(day.hasSuffix("\r\n"), "the table's empty deny wins over the command line's: '\(day)'")
        try serverd.stop()
    }

    // MARK: - Peer credential rules (the tests run as root: uid 0, gid 0)

    private let otherID = "54321"

    func testAllowUIDZeroServesRoot() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root") }
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess(["--allow-uid", "\(otherID),0", "--listen", "echo@unix:\(dir.path("s.sock"))"], directory: dir)
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("root"))
        try serverd.stop()
    }

    func testAllowUIDOfAnotherUserRefusesRoot() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root") }
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess(["--allow-uid", otherID, "--listen", "echo@unix:\(dir.path("s.sock"))"], directory: dir)
        try serverd.waitForListening(1)
        let client = try TestClient.connect("unix:\(dir.path("s.sock"))")
        try? client.send("let me in")
        XCTAssertTrue(client.isClosedWithoutData())
        let log = try serverd.waitForLog("refused")
        XCTAssertTrue(log.contains("uid=0") || log.contains("uid 0"), "the refusal names the peer:\n\(log)")
        try serverd.stop()
    }

    func testAllowGIDServesAndRefuses() throws {
        guard getuid() == 0, getgid() == 0 else { throw XCTSkip("needs root") }
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--allow-gid", "0", "--listen", "echo@unix:\(dir.path("in.sock"))",
        ], directory: dir)
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("in.sock"))").echoes("gid"))
        try serverd.stop()

        let refusing = try ServerdProcess(["--allow-gid", otherID, "--listen", "echo@unix:\(dir.path("out.sock"))"])
        try refusing.waitForListening(1)
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("out.sock"))").isClosedWithoutData())
        try refusing.waitForLog("refused")
        try refusing.stop()
    }

    /// A peer is served when its uid or its gid is listed.
    func testUIDOrGIDSuffices() throws {
        guard getuid() == 0, getgid() == 0 else { throw XCTSkip("needs root") }
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess(
            ["--allow-uid", otherID, "--allow-gid", "0", "--listen", "echo@unix:\(dir.path("s.sock"))"], directory: dir)
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect("unix:\(dir.path("s.sock"))").echoes("either"))
        try serverd.stop()
    }

    func testUIDRulesOnAbstractSocket() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root") }
        let name = "serverd-access-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let serverd = try ServerdProcess(["--allow-uid", otherID, "--listen", "echo@unix:@\(name)"])
        try serverd.waitForListening(1)
        XCTAssertTrue(try TestClient.connect("unix:@\(name)").isClosedWithoutData())
        try serverd.waitForLog("refused")
        try serverd.stop()
    }

    func testUnixDatagramUIDRules() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root") }
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--allow-uid", "0", "--listen", "echo@unixgram:\(dir.path("in.sock"))",
        ], directory: dir)
        try serverd.waitForListening(1)
        XCTAssertEqual(try datagramRoundTrip("unixgram:\(dir.path("in.sock"))", Array("yes".utf8)), Array("yes".utf8))
        try serverd.stop()

        let refusing = try ServerdProcess(["--allow-uid", otherID, "--listen", "echo@unixgram:\(dir.path("out.sock"))"])
        try refusing.waitForListening(1)
        XCTAssertNil(try datagramRoundTrip("unixgram:\(dir.path("out.sock"))", Array("no".utf8), timeout: 0.5))
        let log = try refusing.waitForLog("dropped")
        XCTAssertTrue(log.contains("uid=0") || log.contains("uid 0"), log)
        try refusing.stop()
    }

    /// A peer of another uid (a child switched to nobody with setpriv) is refused where only root is
    /// allowed, and served where its uid is listed.
    func testClientOfAnotherUID() throws {
        guard getuid() == 0, let nobody = getpwnam("nobody") else { throw XCTSkip("needs root and nobody") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("needs setpriv") }
        let uid = nobody.pointee.pw_uid
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o755)
        let rootOnly = dir.path("root.sock")
        let nobodyToo = dir.path("nobody.sock")
        let serverd = try ServerdProcess([
            "--socket-mode", "0666", "--allow-uid", "0", "--listen", "echo@unix:\(rootOnly)",
        ], directory: dir)
        try serverd.waitForListening(1)
        let second = try ServerdProcess(["--socket-mode", "0666", "--allow-uid", "\(uid)", "--listen", "echo@unix:\(nobodyToo)"])
        try second.waitForListening(1)

        /// Connects as nobody, sends "hi", prints what came back (`<eof>` if nothing).
        func connectAsNobody(_ path: String) throws -> String {
            let script = """
                import socket
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect('\(path)')
                try:
                    s.sendall(b'hi')
                    data = s.recv(100)
                except OSError:
                    data = b''
                print(data.decode() if data else '<eof>')
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(uid)", "--regid=\(nobody.pointee.pw_gid)", "--clear-groups", "/usr/bin/python3", "-c", script]
            process.currentDirectoryURL = URL(fileURLWithPath: "/")
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw XCTSkip("needs /usr/bin/python3") }
        XCTAssertEqual(try connectAsNobody(rootOnly), "<eof>")
        let log = try serverd.waitForLog("refused")
        XCTAssertTrue(log.contains("uid=\(uid)") || log.contains("uid \(uid)"), log)
        XCTAssertEqual(try connectAsNobody(nobodyToo), "hi")
        try serverd.stop()
        try second.stop()
    }
}
