import FamilyServer
import Glibc
import XCTest

/// SocketAddress and ListenAddress: every textual form of SPEC section 2 parses and prints back,
/// and every malformed form is an AddressError naming the text and what is wrong.
final class SocketAddressTests: XCTestCase {
    private func assertRoundTrip(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let address = try ListenAddress(parsing: text)
            XCTAssertEqual(address.description, text, file: file, line: line)
            XCTAssertEqual(try ListenAddress(parsing: address.description), address, file: file, line: line)
        } catch {
            XCTFail("\(text): \(error)", file: file, line: line)
        }
    }

    private func assertError(
        _ text: String, _ reason: AddressError.Reason, file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let address = try ListenAddress(parsing: text)
            XCTFail("\(text) parsed as \(address)", file: file, line: line)
        } catch {
            XCTAssertEqual(error, AddressError(text, reason), file: file, line: line)
            XCTAssertTrue(error.description.contains("'\(text)'"), "\(error) does not name the address", file: file, line: line)
        }
    }

    private func parse(_ text: String) throws(AddressError) -> SocketAddress { try SocketAddress(parsing: text) }

    // MARK: - Canonical forms

    func testInetCanonicalFormsRoundTrip() {
        for scheme in ["tcp", "udp"] {
            for host in ["127.0.0.1", "[::1]", "[::]", "0.0.0.0", "10.1.2.3", "[fe80::1]", "[2001:db8::8:800:200c:417a]",
                         "[::ffff:192.0.2.1]"] {
                for port in ["0", "1", "80", "21568", "65535"] {
                    assertRoundTrip("\(scheme)://\(host):\(port)")
                }
            }
        }
    }

    func testUnixCanonicalFormsRoundTrip() {
        for scheme in ["unix", "unixgram"] {
            for rest in ["/run/serverd/echo.sock", "relative.sock", "./x", "/", "@serverd-echo", "@a", "@name with space",
                         "/tmp/ünïcödé.sock", "@" + String(repeating: "n", count: 107), "/" + String(repeating: "p", count: 106)] {
                assertRoundTrip("\(scheme):\(rest)")
            }
        }
    }

    func testListenAddressFormsRoundTrip() {
        for text in ["fd:0", "fd:3", "fd:1024", "systemd", "systemd:echo", "systemd:stamp-v6", "systemd:a.b_c"] {
            assertRoundTrip(text)
        }
        XCTAssertEqual(try ListenAddress(parsing: "fd:3"), .descriptor(3))
        XCTAssertEqual(try ListenAddress(parsing: "systemd"), .systemd(name: nil))
        XCTAssertEqual(try ListenAddress(parsing: "systemd:echo"), .systemd(name: "echo"))
        XCTAssertEqual(try ListenAddress(parsing: "tcp://127.0.0.1:7"), .bind(try parse("tcp://127.0.0.1:7")))
    }

    func testParsedParts() throws {
        let v4 = try parse("tcp://127.0.0.1:80")
        XCTAssertEqual(v4.transport, .stream)
        XCTAssertEqual(v4.family, AF_INET)
        XCTAssertEqual(v4.ip, IPAddress(numeric: "127.0.0.1"))
        XCTAssertEqual(v4.port, 80)
        XCTAssertNil(v4.path)
        XCTAssertFalse(v4.isUnix)

        let v6 = try parse("udp://[::1]:53")
        XCTAssertEqual(v6.transport, .datagram)
        XCTAssertEqual(v6.family, AF_INET6)
        XCTAssertEqual(v6.port, 53)

        let path = try parse("unixgram:/run/x.sock")
        XCTAssertEqual(path.transport, .datagram)
        XCTAssertEqual(path.family, AF_UNIX)
        XCTAssertEqual(path.path, "/run/x.sock")
        XCTAssertEqual(path.endpoint, .unixPath("/run/x.sock"))
        XCTAssertTrue(path.isUnix)

        let abstract = try parse("unix:@echo")
        XCTAssertEqual(abstract.transport, .stream)
        XCTAssertEqual(abstract.endpoint, .unixAbstract(Array("echo".utf8)))
        XCTAssertNil(abstract.path)
        XCTAssertTrue(abstract.isUnix)
    }

    // MARK: - Forms that print differently

    func testStarIsTheDualStackWildcard() throws {
        XCTAssertEqual(try parse("tcp://*:2000").description, "tcp://[::]:2000")
        XCTAssertEqual(try parse("udp://*:0").description, "udp://[::]:0")
        XCTAssertEqual(try parse("tcp://*:2000"), try parse("tcp://[::]:2000"))
        XCTAssertEqual(try parse("tcp://*:2000").family, AF_INET6)
    }

    func testNonCanonicalLiteralsPrintCanonically() throws {
        XCTAssertEqual(try parse("tcp://[0:0:0:0:0:0:0:1]:80").description, "tcp://[::1]:80")
        XCTAssertEqual(try parse("tcp://[2001:DB8::1]:80").description, "tcp://[2001:db8::1]:80")
        XCTAssertEqual(try parse("tcp://127.0.0.1:0080").description, "tcp://127.0.0.1:80")
    }

    func testHostNameResolvesToTheAddressUsed() throws {
        let address = try parse("tcp://localhost:21568")
        XCTAssertTrue(["tcp://127.0.0.1:21568", "tcp://[::1]:21568"].contains(address.description), address.description)
        let datagram = try parse("udp://localhost:7")
        XCTAssertTrue(["udp://127.0.0.1:7", "udp://[::1]:7"].contains(datagram.description), datagram.description)
    }

    func testBoundPortIsPrinted() throws {
        let server = try TCPServer(address: try parse("tcp://127.0.0.1:0"), handler: StreamEchoHandler.self)
        defer { server.serverClose() }
        let port = try XCTUnwrap(server.serverAddress.port)
        XCTAssertNotEqual(port, 0)
        XCTAssertEqual(server.serverAddress.description, "tcp://127.0.0.1:\(port)")
    }

    // MARK: - Errors

    func testIPAddressBytesEqualityAndHashing() throws {
        let v4: [UInt8] = [192, 0, 2, 7]
        let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9]
        XCTAssertEqual(IPAddress(bytes: v4).bytes, v4)
        XCTAssertEqual(IPAddress(bytes: v6).bytes, v6)
        XCTAssertEqual(IPAddress(bytes: v4), IPAddress(numeric: "192.0.2.7"))
        XCTAssertEqual(Set([IPAddress(bytes: v6), try XCTUnwrap(IPAddress(numeric: "2001:db8::9"))]).count, 1)
        XCTAssertNotEqual(IPAddress.anyIPv4, IPAddress.anyIPv6, "4 zero bytes are not 16")
        XCTAssertNotEqual(Set([IPAddress.anyIPv4, IPAddress.anyIPv6]).count, 1)
        XCTAssertNotEqual(IPAddress(bytes: v6, scopeID: 2), IPAddress(bytes: v6), "the scope id counts")
        let mapped = try XCTUnwrap(IPAddress(numeric: "::ffff:127.0.0.9"))
        XCTAssertEqual(mapped.mappedIPv4, IPAddress(numeric: "127.0.0.9"))
        XCTAssertTrue(mapped.isLoopback)
        XCTAssertNil(IPAddress(bytes: v6).mappedIPv4)
        XCTAssertTrue(IPAddress.anyIPv6.isWildcard && IPAddress.anyIPv4.isWildcard)
        XCTAssertFalse(IPAddress(bytes: v4).isWildcard)
        XCTAssertEqual(SocketAddress(.datagram, .inet(IPAddress(bytes: v6), port: 9)).description, "udp://[2001:db8::9]:9")
    }

    func testUnknownScheme() {
        for text in ["", "127.0.0.1:80", "http://127.0.0.1:80", "tcp:/127.0.0.1:80", "tcp:127.0.0.1:80", "TCP://127.0.0.1:80",
                     "tcp6://[::1]:80", "unixstream:/x", "sctp://127.0.0.1:1", "systemdx", "fd3", "/run/x.sock", "@name"] {
            assertError(text, .unknownScheme)
        }
    }

    func testMissingHost() {
        for text in ["tcp://", "tcp://:80", "udp://", "udp://:0"] {
            assertError(text, .missingHost)
        }
    }

    func testMissingPort() {
        for text in ["tcp://127.0.0.1", "tcp://127.0.0.1:", "tcp://[::1]", "tcp://[::1]:", "tcp://localhost", "udp://*",
                     "tcp://[::1]80"] {
            assertError(text, .missingPort)
        }
    }

    func testBadPort() {
        for port in ["65536", "99999", "123456", "-1", "+80", " 80", "80 ", "http", "8o", "0x50", "1e3"] {
            assertError("tcp://127.0.0.1:\(port)", .badPort(port))
            assertError("udp://[::1]:\(port)", .badPort(port))
        }
    }

    func testBadIPv6() {
        assertError("tcp://[::1:80", .badIPv6("::1:80"))
        assertError("tcp://[zz::1]:80", .badIPv6("zz::1"))
        assertError("tcp://[127.0.0.1]:80", .badIPv6("127.0.0.1"))
        assertError("tcp://[]:80", .badIPv6(""))
        assertError("tcp://[::1%lo]:80", .badIPv6("::1%lo"))
        assertError("udp://::1:80", .badIPv6("::1"))
        assertError("tcp://1::2::3:80", .badIPv6("1::2::3"))
    }

    func testEmptyPath() {
        for text in ["unix:", "unixgram:", "unix:@", "unixgram:@"] {
            assertError(text, .emptyPath)
        }
    }

    func testTooLongPathAndAbstractName() throws {
        let path107 = "/" + String(repeating: "p", count: 106)
        let path108 = "/" + String(repeating: "p", count: 107)
        let name107 = String(repeating: "n", count: 107)
        let name108 = String(repeating: "n", count: 108)
        for scheme in ["unix", "unixgram"] {
            XCTAssertEqual(try parse("\(scheme):\(path107)").path, path107)
            XCTAssertEqual(try parse("\(scheme):@\(name107)").endpoint, .unixAbstract(Array(name107.utf8)))
            assertError("\(scheme):\(path108)", .tooLong(bytes: 108))
            assertError("\(scheme):@\(name108)", .tooLong(bytes: 108))
            // Bytes, not characters: 54 two-byte characters are 108 bytes.
            assertError("\(scheme):/" + String(repeating: "é", count: 54), .tooLong(bytes: 109))
        }
        do {
            _ = try parse("unix:\(path108)")
        } catch {
            XCTAssertTrue(error.description.contains("too long"), error.description)
        }
    }

    func testNulInPath() {
        assertError("unix:/tmp/a\0b", .nulInPath)
    }

    func testBadDescriptor() {
        for number in ["", "x", "-1", "+3", "3.0", " 3", "3 ", "0x3", "99999999999"] {
            assertError("fd:\(number)", .badDescriptor(number))
        }
    }

    func testBadSystemdName() {
        for name in ["", "a:b", "tab\there", "new\nline", "é", "del\u{7f}", String(repeating: "n", count: 256)] {
            assertError("systemd:\(name)", .badFDName(name))
        }
        assertRoundTrip("systemd:" + String(repeating: "n", count: 255))
    }

    func testErrorDescriptionsSayWhatIsWrong() {
        let cases: [(String, String)] = [
            ("gopher://x:1", "unknown scheme"),
            ("tcp://:1", "missing host"),
            ("tcp://127.0.0.1", "missing port"),
            ("tcp://127.0.0.1:70000", "65535"),
            ("tcp://[::g]:1", "IPv6"),
            ("unix:", "empty"),
            ("unix:@" + String(repeating: "n", count: 200), "too long"),
            ("fd:x", "descriptor"),
            ("systemd:", "fd name"),
        ]
        for (text, phrase) in cases {
            do {
                _ = try ListenAddress(parsing: text)
                XCTFail("\(text) parsed")
            } catch {
                XCTAssertTrue(error.description.contains(phrase), "'\(error)' does not say '\(phrase)'")
                XCTAssertTrue(error.description.contains(text), "'\(error)' does not name '\(text)'")
            }
        }
    }
}
