import FamilyServer
import Foundation
import Glibc
import XCTest

/// serverd's datagram listeners take what is queued in batches (issue 13) and still check and answer each datagram
/// on its own. serverd is stopped (SIGSTOP) while a burst is sent, so that the whole burst is queued before it reads
/// and arrives in batches.
final class DatagramBatchServingTests: XCTestCase {
    /// A socket for talking to `target`, bound to `local` (a Unix client must have a name to be answered).
    private func sender(to target: SocketAddress, bindingTo local: SocketAddress? = nil) throws -> Socket {
        let socket = try Socket(family: target.family, transport: .datagram)
        try socket.setTimeouts(receive: 10, send: 10)
        if let local { try socket.bind(to: local) }
        return socket
    }

    /// Runs `send` while serverd is stopped, then lets it go on.
    private func whileStopped(_ serverd: ServerdProcess, _ send: () throws -> Void) rethrows {
        serverd.send(SIGSTOP)
        defer { serverd.send(SIGCONT) }
        try send()
    }

    private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// UDP v4 and v6, a Unix sender bound to a path and one bound to an abstract name: each datagram of the burst is
    /// answered once, at its own sender, in the order that sender sent them.
    func testABurstQueuedBeforeServerdReadsIsAnsweredOnceEachInOrder() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess([
            "--listen", "echo@udp://127.0.0.1:0", "--listen", "echo@udp://[::1]:0", "--listen", "echo@unixgram:\(dir.path("echo.sock"))",
        ], directory: dir)
        let listening = try serverd.waitForListening(3).map { try SocketAddress(parsing: addressPart($0)) }
        // A Unix datagram socket queues net.unix.max_dgram_qlen datagrams (10 by default): 2 senders × 4 fit.
        var senders: [(socket: Socket, target: SocketAddress, count: Int)] = []
        defer { senders.forEach { $0.socket.close() } }
        for target in listening.prefix(2) {
            for _ in 0..<2 { senders.append((try sender(to: target), target, 20)) }
        }
        let unix = listening[2]
        senders.append((try sender(to: unix, bindingTo: SocketAddress(.datagram, .unixPath(dir.path("client.sock")))), unix, 4))
        senders.append((try sender(to: unix, bindingTo: SocketAddress(.datagram, .unixAbstract(Array("batch-\(getpid())".utf8)))), unix, 4))
        try whileStopped(serverd) {
            for round in 0..<20 {
                for (index, sender) in senders.enumerated() where round < sender.count {
                    try sender.socket.sendDatagram(Array("\(index).\(round)".utf8), to: sender.target)
                }
            }
        }
        for (index, sender) in senders.enumerated() {
            for round in 0..<sender.count {
                XCTAssertEqual(text(try sender.socket.receiveDatagram(maxSize: 100)?.bytes), "\(index).\(round)", "sender \(index) (\(sender.target))")
            }
            // Nothing more came: the next reply answers the next datagram.
            try sender.socket.sendDatagram(Array("last".utf8), to: sender.target)
            XCTAssertEqual(text(try sender.socket.receiveDatagram(maxSize: 100)?.bytes), "last", "sender \(index) (\(sender.target))")
        }
        XCTAssertFalse(serverd.stderr.contains("dropped"), serverd.stderr)
        try serverd.stop()
    }

    /// In one batch, a denied source and one past `max-rate-per-source` are dropped datagram by datagram, while an
    /// admitted source interleaved with them gets every answer.
    func testABatchMixingRefusedSourcesAnswersOnlyWhatIsAdmitted() throws {
        let serverd = try ServerdProcess([
            "--deny", "127.0.0.2/32", "--max-rate-per-source", "3", "--listen", "echo@udp://127.0.0.1:0",
        ])
        let target = try SocketAddress(parsing: addressPart(try serverd.waitForListening(1)[0]))
        let admitted = try sender(to: target, bindingTo: SocketAddress(parsing: "udp://127.0.0.1:0"))
        defer { admitted.close() }
        let denied = try sender(to: target, bindingTo: SocketAddress(parsing: "udp://127.0.0.2:0"))
        defer { denied.close() }
        let paced = try sender(to: target, bindingTo: SocketAddress(parsing: "udp://127.0.0.3:0"))
        defer { paced.close() }
        try whileStopped(serverd) {
            for round in 0..<8 {
                if round < 2 { try admitted.sendDatagram(Array("a\(round)".utf8), to: target) }
                try denied.sendDatagram(Array("d\(round)".utf8), to: target)
                try paced.sendDatagram(Array("p\(round)".utf8), to: target)
            }
        }
        for round in 0..<3 {
            if round < 2 { XCTAssertEqual(text(try admitted.receiveDatagram(maxSize: 100)?.bytes), "a\(round)") }
            XCTAssertEqual(text(try paced.receiveDatagram(maxSize: 100)?.bytes), "p\(round)", "the source's burst of 3")
        }
        // The admitted source's third datagram (within its rate): serverd answers in order, over loopback, so once
        // this reply is here every reply of the burst was sent.
        try admitted.sendDatagram(Array("last".utf8), to: target)
        XCTAssertEqual(text(try admitted.receiveDatagram(maxSize: 100)?.bytes), "last")
        try denied.setNonBlocking(true)
        try paced.setNonBlocking(true)
        XCTAssertNil(try denied.receiveDatagram(maxSize: 100), "a denied source was answered")
        XCTAssertNil(try paced.receiveDatagram(maxSize: 100), "a source past its rate was answered")
        let log = try serverd.waitForLog("dropped a datagram from udp://127.0.0.3:")
        XCTAssertTrue(log.contains("more than 3 datagrams per second from it"), log)
        try serverd.stop()
    }

    /// A Unix sender whose socket was replaced by a symlink to another socket after it sent its requests gets
    /// nothing, and neither does that socket, while the senders around it in the same batch get their answers.
    func testASenderSwappedForASymlinkIsDroppedWhileItsBatchIsAnswered() throws {
        let dir = try TemporaryDirectory()
        let serverd = try ServerdProcess(["--listen", "echo@unixgram:\(dir.path("echo.sock"))"], directory: dir)
        let target = try SocketAddress(parsing: addressPart(try serverd.waitForListening(1)[0]))
        let victim = try sender(to: target, bindingTo: SocketAddress(.datagram, .unixPath(dir.path("victim.sock"))))
        defer { victim.close() }
        let honest = try sender(to: target, bindingTo: SocketAddress(.datagram, .unixPath(dir.path("honest.sock"))))
        defer { honest.close() }
        let abstract = try sender(to: target, bindingTo: SocketAddress(.datagram, .unixAbstract(Array("swap-\(getpid())".utf8))))
        defer { abstract.close() }
        let swapped = try sender(to: target, bindingTo: SocketAddress(.datagram, .unixPath(dir.path("swapped.sock"))))
        try whileStopped(serverd) {
            for round in 0..<3 {
                try honest.sendDatagram(Array("h\(round)".utf8), to: target)
                try swapped.sendDatagram(Array("s\(round)".utf8), to: target)
                try abstract.sendDatagram(Array("a\(round)".utf8), to: target)
            }
            swapped.close()
            XCTAssertEqual(unlink(dir.path("swapped.sock")), 0)
            XCTAssertEqual(symlink(dir.path("victim.sock"), dir.path("swapped.sock")), 0)
        }
        for round in 0..<3 {
            XCTAssertEqual(text(try honest.receiveDatagram(maxSize: 100)?.bytes), "h\(round)")
            XCTAssertEqual(text(try abstract.receiveDatagram(maxSize: 100)?.bytes), "a\(round)")
        }
        try honest.sendDatagram(Array("last".utf8), to: target)
        XCTAssertEqual(text(try honest.receiveDatagram(maxSize: 100)?.bytes), "last")
        try victim.setNonBlocking(true)
        XCTAssertNil(try victim.receiveDatagram(maxSize: 100), "a reply reached the socket behind the symlink")
        let log = try serverd.waitForLog("is a symlink now")
        XCTAssertTrue(log.contains(dir.path("swapped.sock")), log)
        try serverd.stop()
    }
}
