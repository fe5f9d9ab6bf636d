import CShims
import FamilyServer
import Foundation
import Glibc
import XCTest

/// Issue 11, item 2: UDP datagrams with a forged source must not start an echo loop or turn
/// serverd into an amplifier. The forged datagrams are sent on loopback from a raw socket, which
/// lets the test write any source port (the kernel fills in 127.0.0.1).
final class ReflectionTests: XCTestCase {
    /// Sends one UDP datagram to 127.0.0.1:`port` that claims to come from 127.0.0.1:`sourcePort`.
    private func sendForged(from sourcePort: UInt16, to port: UInt16, _ payload: String) throws {
        guard getuid() == 0 else { throw XCTSkip("a raw socket needs root") }
        let fd = socket(AF_INET, cshims_sock_raw, Int32(IPPROTO_UDP))
        guard fd >= 0 else { throw TestFailure("socket(SOCK_RAW): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let body = Array(payload.utf8)
        let length = UInt16(8 + body.count)
        // The UDP header: source port, destination port, length, checksum 0 (none, valid on IPv4).
        let packet = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), UInt8(port >> 8), UInt8(port & 0xff),
                      UInt8(length >> 8), UInt8(length & 0xff), 0, 0] + body
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_addr.s_addr = inet_addr("127.0.0.1")
        let sent = packet.withUnsafeBytes { bytes in
            withUnsafePointer(to: &target) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == packet.count else { throw TestFailure("sendto(raw): \(String(cString: strerror(errno)))") }
    }

    private func port(of text: String) throws -> UInt16 {
        try XCTUnwrap(try SocketAddress(parsing: addressPart(text)).port)
    }

    func testADatagramFromServerdsOwnPortsIsNeverAnswered() throws {
        let serverd = try ServerdProcess(["--listen", "echo@udp://127.0.0.1:0", "--listen", "daytime@udp://127.0.0.1:0"])
        let lines = try serverd.waitForListening(2)
        let echo = try port(of: lines[0]), daytime = try port(of: lines[1])
        // Without the guard: echo → daytime → echo … for ever, and echo answering itself.
        try sendForged(from: daytime, to: echo, "loop")
        try sendForged(from: echo, to: echo, "self")
        try serverd.waitForLog("is one of serverd's own UDP ports")
        XCTAssertTrue(serverd.stderr.contains("dropped a datagram from udp://127.0.0.1:\(daytime): source port \(daytime)"), serverd.stderr)
        // Everyone else is still answered, once.
        XCTAssertEqual(try datagramRoundTrip(addressPart(lines[0]), Array("hi".utf8)), Array("hi".utf8))
        try serverd.stop()
    }

    func testSourcePortZeroAndPrivilegedPortsAreNeverAnswered() throws {
        let serverd = try ServerdProcess(["--listen", "echo@udp://127.0.0.1:0"])
        let echo = try port(of: try serverd.waitForListening(1)[0])
        try sendForged(from: 0, to: echo, "zero")
        try serverd.waitForLog("source port 0")
        try sendForged(from: 19, to: echo, "chargen")
        try serverd.waitForLog("privileged source port 19")
        try serverd.stop()
    }

    func testOneDatagramGetsAtMostOneReply() throws {
        let serverd = try ServerdProcess(["--listen", "echo@udp://127.0.0.1:0"])
        let address = try SocketAddress(parsing: addressPart(try serverd.waitForListening(1)[0]))
        let client = try Socket(family: AF_INET, transport: .datagram)
        defer { client.close() }
        try client.setTimeouts(receive: 5, send: 5)
        try client.sendDatagram(Array("once".utf8), to: address)
        XCTAssertEqual(try client.receiveDatagram(maxSize: 100)?.bytes, Array("once".utf8))
        // The next reply must be the answer to the next datagram, not a second answer to the first.
        try client.sendDatagram(Array("twice".utf8), to: address)
        XCTAssertEqual(try client.receiveDatagram(maxSize: 100)?.bytes, Array("twice".utf8))
        try serverd.stop()
    }

    /// Loopback sources cannot be forged without CAP_NET_RAW, so the reply budget (for sources
    /// elsewhere: ReplyRateLimiterTests) never holds them back: a local client gets every answer.
    func testALoopbackClientIsNotRateLimited() throws {
        let serverd = try ServerdProcess(["--listen", "daytime@udp://127.0.0.1:0"])
        let address = try SocketAddress(parsing: addressPart(try serverd.waitForListening(1)[0]))
        let client = try Socket(family: AF_INET, transport: .datagram)
        defer { client.close() }
        try client.setTimeouts(receive: 5, send: 5)
        for index in 0..<300 {
            try client.sendDatagram([0x0A], to: address)
            XCTAssertNotNil(try client.receiveDatagram(maxSize: 100), "no reply to datagram \(index)")
        }
        XCTAssertFalse(serverd.stderr.contains("dropped"), serverd.stderr)
        try serverd.stop()
    }
}
