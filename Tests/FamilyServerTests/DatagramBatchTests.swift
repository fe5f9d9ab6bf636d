import FamilyServer
import Glibc
import Synchronization
import XCTest

/// Datagrams in batches (issue 13): `recvmmsg` into reused buffers, the replies of a batch by one `sendmmsg`, and a
/// server that takes what is queued in batches while each datagram is still checked and answered on its own.
final class DatagramBatchTests: FamilyServerTestCase {
    // MARK: - The socket calls

    func testReceiveDatagramsTakesWhatIsQueuedUpToTheLimitAndCutsTheOversized() throws {
        for family in [TestFamily.ipv4, .unixPath] {
            let server = try Socket(family: family == .ipv4 ? AF_INET : AF_UNIX, transport: .datagram)
            defer { server.close() }
            try server.bind(to: address(family, .datagram))
            try server.setNonBlocking(true)
            if family == .unixPath { try server.enablePassCredentials() }
            let serverAddress = try server.localAddress()
            let local = clientAddress(for: serverAddress) ?? SocketAddress(.datagram, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0))
            let client = try Client.datagramSocket(for: serverAddress, bindingTo: local)
            defer { client.close() }
            let clientName = try client.localAddress()
            let sizes = [3, 40, 5, 7, 1]
            for size in sizes { try client.sendDatagram([UInt8](repeating: UInt8(size), count: size), to: serverAddress) }

            let batch = DatagramReceiveBatch(capacity: 4, maxPacketSize: 16)
            XCTAssertEqual(try server.receiveDatagrams(into: batch, limit: 2), 2, "\(family): the limit")
            XCTAssertEqual(batch.payload(at: 0), [3, 3, 3])
            XCTAssertEqual(batch.payload(at: 1), [UInt8](repeating: 40, count: 16), "\(family): cut to maxPacketSize")
            XCTAssertEqual(batch.wasTruncated(at: 0), false)
            XCTAssertEqual(batch.wasTruncated(at: 1), true)
            XCTAssertEqual(batch.sender(at: 1, transport: .datagram), clientName)
            if family == .unixPath {
                XCTAssertEqual(batch.credentials(at: 0)?.pid, getpid())
                XCTAssertEqual(batch.credentials(at: 0)?.uid, getuid())
            } else {
                XCTAssertNil(batch.credentials(at: 0))
            }
            XCTAssertEqual(try server.receiveDatagrams(into: batch, limit: 10), 3, "\(family): the rest, at most the capacity")
            XCTAssertEqual((0..<3).map { batch.payload(at: $0) }, [[5, 5, 5, 5, 5], [UInt8](repeating: 7, count: 7), [1]])
            XCTAssertEqual(try server.receiveDatagrams(into: batch, limit: 4), 0, "\(family): nothing queued")
            XCTAssertEqual(batch.count, 0)
        }
    }

    /// A sender decoded for one datagram is reused for the next from the same address, never for one from another
    /// address, and never across receives into the same slots.
    func testSendersAreDecodedPerDatagramWithinAndAcrossReceives() throws {
        for family in [TestFamily.ipv4, .unixPath, .unixAbstract] {
            let server = try Socket(family: family == .ipv4 ? AF_INET : AF_UNIX, transport: .datagram)
            defer { server.close() }
            try server.bind(to: address(family, .datagram))
            try server.setNonBlocking(true)
            let serverAddress = try server.localAddress()
            let clients = try (0..<2).map { _ in
                try Client.datagramSocket(
                    for: serverAddress,
                    bindingTo: clientAddress(for: serverAddress)
                        ?? SocketAddress(.datagram, .inet(IPAddress(numeric: "127.0.0.1")!, port: 0)))
            }
            defer { clients.forEach { $0.close() } }
            let names = try clients.map { try $0.localAddress() }
            // First receive: A A B, the last decoded from the third slot; second: A A A, the third slot refilled by A.
            for index in [0, 0, 1, 0, 0, 0] { try clients[index].sendDatagram([UInt8(index)], to: serverAddress) }
            let batch = DatagramReceiveBatch(capacity: 4, maxPacketSize: 16)
            XCTAssertEqual(try server.receiveDatagrams(into: batch, limit: 3), 3)
            XCTAssertEqual((0..<3).map { batch.sender(at: $0, transport: .datagram) }, [names[0], names[0], names[1]], "\(family)")
            XCTAssertEqual(try server.receiveDatagrams(into: batch, limit: 3), 3)
            XCTAssertEqual((0..<3).map { batch.sender(at: $0, transport: .datagram) }, [names[0], names[0], names[0]],
                           "\(family): slots refilled by another sender")
        }
    }

    /// A reply the kernel refuses fails alone, reported with its errno and destination; the others are sent, in order.
    func testSendDatagramsReportsARefusedReplyAndSendsTheRest() throws {
        let server = try Socket(family: AF_UNIX, transport: .datagram)
        defer { server.close() }
        let any = address(.unixPath, .datagram)
        let first = try Client.datagramSocket(for: any, bindingTo: SocketAddress(.datagram, .unixPath(path("first.sock"))))
        defer { first.close() }
        let second = try Client.datagramSocket(for: any, bindingTo: SocketAddress(.datagram, .unixPath(path("second.sock"))))
        defer { second.close() }
        let nobody = SocketAddress(.datagram, .unixPath(path("nobody.sock")))
        var reports: [(SocketAddress, Int, SocketError?)] = []
        let batch = DatagramReplyBatch(capacity: 8) { reports.append(($0, $1, $2)) }
        try batch.add(Array("one".utf8), to: first.localAddress())
        try batch.add(Array("lost".utf8), to: nobody)
        try batch.add(Array("two".utf8), to: second.localAddress())
        try batch.add(Array("three".utf8), to: first.localAddress())
        XCTAssertEqual(batch.count, 4)
        server.sendDatagrams(batch)
        XCTAssertEqual(batch.count, 0, "the batch is emptied")
        XCTAssertEqual(try Client.receiveDatagram(first), Array("one".utf8))
        XCTAssertEqual(try Client.receiveDatagram(first), Array("three".utf8))
        XCTAssertEqual(try Client.receiveDatagram(second), Array("two".utf8))
        XCTAssertEqual(reports.map(\.1), [3, 4, 3, 5])
        XCTAssertEqual(reports.map { $0.2 == nil }, [true, false, true, true])
        XCTAssertEqual(reports[1].2?.syscall, "sendmmsg")
        XCTAssertEqual(reports[1].2?.errno, ENOENT)
        XCTAssertTrue("\(reports[1].2!)".contains(path("nobody.sock")), "\(reports[1].2!)")
    }

    // MARK: - The server

    /// A burst from several senders, queued before the server reads: each datagram is answered once, at its own
    /// sender, in the order that sender sent them; the server took them in batches.
    func testABurstFromSeveralSendersIsAnsweredOnceEachInOrder() throws {
        try requireIPv6()
        // A Unix datagram socket queues net.unix.max_dgram_qlen datagrams (10 by default): 3 senders × 3 fit.
        for (family, rounds) in [(TestFamily.ipv4, 12), (.ipv6, 12), (.unixPath, 3), (.unixAbstract, 3)] {
            try expectEachSenderAnswered(family, senders: 3, order: (0..<rounds).flatMap { _ in [0, 1, 2] })
        }
    }

    /// Runs of datagrams from one sender, the runs of two senders alternating, all in one batch: each reply reaches
    /// the socket that sent its datagram, in order.
    func testRunsOfDatagramsFromOneSenderAreAnsweredAtTheirOwnSocket() throws {
        for family in [TestFamily.ipv4, .unixPath, .unixAbstract] {
            try expectEachSenderAnswered(family, senders: 2, order: [0, 0, 0, 1, 1, 0, 1, 1, 0])
        }
    }

    /// Queues a datagram from sender `order[i]` for each `i` before the server reads, then serves: each sender gets its
    /// replies in the order it sent, then the answer to one more datagram; nothing is refused, and the server took
    /// the datagrams in batches.
    private func expectEachSenderAnswered(_ family: TestFamily, senders count: Int, order: [Int]) throws {
        let server = try BatchRecordingServer(address: address(family, .datagram), handler: BatchEchoHandler.self)
        defer { server.serverClose() }
        let senders = try (0..<count).map { _ in
            try Client.datagramSocket(for: server.serverAddress, bindingTo: clientAddress(for: server.serverAddress))
        }
        defer { senders.forEach { $0.close() } }
        for (position, index) in order.enumerated() {
            try senders[index].sendDatagram(Array("\(index).\(position)".utf8), to: server.serverAddress)
        }
        let thread = try serving(server) {
            for (index, sender) in senders.enumerated() {
                for position in order.indices where order[position] == index {
                    let reply = String(decoding: try Client.receiveDatagram(sender), as: UTF8.self)
                    try expect(reply == "\(index).\(position)", "\(family): sender \(index) got \(reply), not \(index).\(position)")
                }
                // Nothing more came: the next reply is the answer to the next datagram.
                try sender.sendDatagram(Array("last".utf8), to: server.serverAddress)
                let last = String(decoding: try Client.receiveDatagram(sender), as: UTF8.self)
                try expect(last == "last", "\(family): sender \(index) got \(last) after its burst")
            }
        }
        server.shutdown()
        XCTAssertTrue(thread.join())
        XCTAssertTrue(server.events.all.isEmpty, "\(family): \(server.events.all)")
        XCTAssertGreaterThan(server.handledWithMoreReceived.load(ordering: .relaxed), 0, "\(family): no batch was taken")
    }

    /// Truncation in a batch: the oversized datagram is cut to maxPacketSize, its neighbours are whole.
    func testAnOversizedDatagramInABatchIsCutAndItsNeighboursAreWhole() throws {
        let server = try BatchRecordingServer(address: address(.ipv4, .datagram), handler: SizeHandler.self)
        defer { server.serverClose() }
        server.maxPacketSize = 100
        let client = try Client.datagramSocket(for: server.serverAddress)
        defer { client.close() }
        for size in [5, 1000, 6] { try client.sendDatagram([UInt8](repeating: 0x61, count: size), to: server.serverAddress) }
        let thread = try serving(server) {
            for size in ["5", "100", "6"] {
                let reply = String(decoding: try Client.receiveDatagram(client), as: UTF8.self)
                try expect(reply == size, "the reply was \(reply), not \(size)")
            }
        }
        server.shutdown()
        XCTAssertTrue(thread.join())
        XCTAssertGreaterThan(server.handledWithMoreReceived.load(ordering: .relaxed), 0, "no batch was taken")
    }

    /// A Unix sender whose socket was replaced (by a symlink to another socket) between its request and the reply
    /// gets nothing, and neither does the socket behind the symlink, while the other senders of the batch get
    /// their answers.
    func testASenderReplacedWithinABatchGetsNothingAndTheOthersTheirAnswers() throws {
        let server = try BatchRecordingServer(address: address(.unixPath, .datagram), handler: BatchEchoHandler.self)
        defer { server.serverClose() }
        let victim = try Socket(family: AF_UNIX, transport: .datagram)
        defer { victim.close() }
        try victim.bind(to: SocketAddress(.datagram, .unixPath(path("victim.sock"))))
        try victim.setNonBlocking(true)
        let honest = try (0..<2).map { index in
            try Client.datagramSocket(for: server.serverAddress, bindingTo: SocketAddress(.datagram, .unixPath(path("honest\(index).sock"))))
        }
        defer { honest.forEach { $0.close() } }
        let swapped = try Client.datagramSocket(for: server.serverAddress, bindingTo: SocketAddress(.datagram, .unixPath(path("swapped.sock"))))
        for round in 0..<3 {
            try honest[0].sendDatagram(Array("a\(round)".utf8), to: server.serverAddress)
            try swapped.sendDatagram(Array("x\(round)".utf8), to: server.serverAddress)
            try honest[1].sendDatagram(Array("b\(round)".utf8), to: server.serverAddress)
        }
        swapped.close()
        XCTAssertEqual(unlink(path("swapped.sock")), 0)
        XCTAssertEqual(symlink(path("victim.sock"), path("swapped.sock")), 0)
        let thread = try serving(server) {
            for (socket, tag) in zip(honest, ["a", "b"]) {
                for round in 0..<3 {
                    let reply = String(decoding: try Client.receiveDatagram(socket), as: UTF8.self)
                    try expect(reply == "\(tag)\(round)", "got \(reply), not \(tag)\(round)")
                }
            }
        }
        XCTAssertTrue(eventually { server.events.all.count >= 3 }, "\(server.events.all)")
        server.shutdown()
        XCTAssertTrue(thread.join())
        XCTAssertNil(try victim.receiveDatagram(maxSize: 100), "a reply reached the socket behind the symlink")
        XCTAssertEqual(server.events.all.count, 3, "one refusal per datagram of the swapped sender: \(server.events.all)")
        XCTAssertTrue(server.events.all.allSatisfy { $0.contains("is a symlink") }, "\(server.events.all)")
        XCTAssertGreaterThan(server.handledWithMoreReceived.load(ordering: .relaxed), 0, "no batch was taken")
    }

    /// A server that answers in place gets each received batch whole on the serial model (no request, no handler):
    /// its replies go out together and each is reported to replySent; on the threading model it is not asked, and the
    /// handlers answer.
    func testABatchAnsweredInPlaceSkipsTheRequestsAndItsRepliesAreReported() throws {
        let server = try InPlaceServer(address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        let client = try Client.datagramSocket(for: server.serverAddress)
        defer { client.close() }
        for index in 0..<10 { try client.sendDatagram(Array("\(index)".utf8), to: server.serverAddress) }
        let thread = try serving(server) {
            for index in 0..<10 {
                let reply = String(decoding: try Client.receiveDatagram(client), as: UTF8.self)
                try expect(reply == "in place \(index)", "reply \(index) was \(reply)")
            }
        }
        server.shutdown()
        XCTAssertTrue(thread.join())
        XCTAssertEqual(server.answered.load(ordering: .relaxed), 10)
        XCTAssertLessThan(server.batches.load(ordering: .relaxed), 10, "the queued datagrams came in batches")
        XCTAssertEqual(server.replies.load(ordering: .relaxed), 10, "every reply reported sent")
        XCTAssertEqual(server.handled.load(ordering: .relaxed), 0, "no handler ran")

        let threaded = try InPlaceServer(
            address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self, model: ThreadingModel())
        defer { threaded.serverClose() }
        try client.sendDatagram(Array("plain".utf8), to: threaded.serverAddress)
        let second = try serving(threaded) {
            let reply = String(decoding: try Client.receiveDatagram(client), as: UTF8.self)
            try expect(reply == "plain", "the threading model's handler answered: \(reply)")
        }
        threaded.shutdown()
        XCTAssertTrue(second.join())
        XCTAssertEqual(threaded.batches.load(ordering: .relaxed), 0, "not asked under the threading model")
    }

    /// Under the threading model each handler sends its own reply at once; the datagrams still come in batches.
    func testTheThreadingModelAnswersEachDatagramFromItsHandler() throws {
        let server = try RecordingDatagramServer(
            address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self, model: ThreadingModel())
        defer { server.serverClose() }
        let client = try Client.datagramSocket(for: server.serverAddress)
        defer { client.close() }
        for index in 0..<20 { try client.sendDatagram(Array("\(index)".utf8), to: server.serverAddress) }
        let thread = try serving(server) {
            var replies: [String] = []
            for _ in 0..<20 { replies.append(String(decoding: try Client.receiveDatagram(client), as: UTF8.self)) }
            try expect(Set(replies) == Set((0..<20).map { "\($0)" }), "the replies were \(replies)")
        }
        server.shutdown()
        XCTAssertTrue(thread.join())
        XCTAssertTrue(server.events.all.isEmpty, "\(server.events.all)")
    }
}

/// A datagram server that notes how often a handler ran while more of its batch waited.
final class BatchRecordingServer: DatagramServer, EventRecording, @unchecked Sendable {
    let events = EventLog()
    /// Handlers that ran while the server held more datagrams of their batch.
    let handledWithMoreReceived = Atomic<Int>(0)

    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        events.append("error: \(error)")
    }
}

/// Answers each batch in place with "in place PAYLOAD", counting batches, datagrams and replies reported sent.
final class InPlaceServer: DatagramServer, @unchecked Sendable {
    let batches = Atomic<Int>(0)
    let answered = Atomic<Int>(0)
    let replies = Atomic<Int>(0)
    let handled = Atomic<Int>(0)

    override func answerInPlace(_ batch: DatagramReceiveBatch, replies: DatagramReplyBatch) -> Bool {
        batches.add(1, ordering: .relaxed)
        for index in 0..<batch.count {
            let reply = Array("in place ".utf8) + batch.withPayload(at: index) { [UInt8]($0) }
            try? replies.add(reply, to: batch.sender(at: index, transport: .datagram))
            answered.add(1, ordering: .relaxed)
        }
        return true
    }

    override func replySent(size: Int, to sender: SocketAddress) {
        super.replySent(size: size, to: sender)
        replies.add(1, ordering: .relaxed)
    }

    override func finishRequest(_ request: Request, clientAddress: SocketAddress) throws {
        handled.add(1, ordering: .relaxed)
        try super.finishRequest(request, clientAddress: clientAddress)
    }
}

/// Echoes, and notes on its server whether more datagrams of the batch wait.
final class BatchEchoHandler: DatagramRequestHandler {
    override func handle() throws {
        let server = server as! BatchRecordingServer
        if server.hasReceivedRequests { server.handledWithMoreReceived.add(1, ordering: .relaxed) }
        try wfile.write(datagram.payload)
    }
}

/// Answers with the size of the payload received, and notes like ``BatchEchoHandler``.
final class SizeHandler: DatagramRequestHandler {
    override func handle() throws {
        let server = server as! BatchRecordingServer
        if server.hasReceivedRequests { server.handledWithMoreReceived.add(1, ordering: .relaxed) }
        try wfile.write(Array("\(datagram.payload.count)".utf8))
    }
}
