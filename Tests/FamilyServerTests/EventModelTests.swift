import FamilyServer
import Glibc
import Synchronization
import XCTest

/// Echoes every byte until the client ends its side.
private final class EventEcho: StreamEventHandler {
    let log: EventLog?
    init(log: EventLog? = nil) { self.log = log }

    func opened(_ connection: EventConnection) { log?.append("opened") }

    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        connection.write(bytes)
        log?.append("pending \(connection.pendingOutput)")
    }

    func connectionClosed(_ connection: EventConnection, reason: EventCloseReason) {
        log?.append("closed \(reason)")
    }
}

/// Answers each LF-terminated line upper-cased, keeping a partial line until its LF arrives.
private final class EventUpperLines: StreamEventHandler {
    private var partial: [UInt8] = []

    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        partial += bytes
        while let end = partial.firstIndex(of: 0x0A) {
            connection.write(partial[...end].map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 })
            partial.removeSubrange(...end)
        }
    }
}

/// Sets a deadline when opened; when it is reached, says so and closes.
private final class EventLateNotice: StreamEventHandler {
    func opened(_ connection: EventConnection) {
        connection.deadline = MonotonicClock.seconds() + 0.2
    }

    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {}

    func deadlineReached(on connection: EventConnection) {
        connection.write(Array("late\n".utf8))
        connection.close()
    }
}

/// Closes idle connections after 0.2 s, recording why each one ended.
private final class EventIdle: StreamEventHandler {
    let log: EventLog
    init(log: EventLog) { self.log = log }

    func opened(_ connection: EventConnection) { connection.idleTimeout = 0.2 }
    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) { connection.write(bytes) }
    func connectionClosed(_ connection: EventConnection, reason: EventCloseReason) { log.append("closed \(reason)") }
}

/// Echoes, with a 0.2 s idle timeout; after echoing a line that starts with "spin" it keeps its reactor busy for
/// 0.4 s, twice that timeout.
private final class EventSpinningEcho: StreamEventHandler {
    func opened(_ connection: EventConnection) { connection.idleTimeout = 0.2 }
    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        connection.write(bytes)
        guard bytes.starts(with: "spin".utf8) else { return }
        let end = MonotonicClock.seconds() + 0.4
        while MonotonicClock.seconds() < end {}
    }
}

/// Keeps the connection open when the client's input ends, recording why it ended in the end.
private final class EventKeepsOpen: StreamEventHandler {
    let log: EventLog
    init(log: EventLog) { self.log = log }

    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {}
    func inputEnded(on connection: EventConnection) { log.append("input ended") }
    func connectionClosed(_ connection: EventConnection, reason: EventCloseReason) {
        if case .failed(let error) = reason { log.append("failed \(error.errno)") } else { log.append("closed \(reason)") }
    }
}

/// Counts ``BaseServer/requestEnded(_:clientAddress:)`` calls.
private final class CountingServer: StreamServer, @unchecked Sendable {
    let ended = Atomic<Int>(0)

    override func requestEnded(_ request: Request, clientAddress: SocketAddress) {
        ended.add(1, ordering: .relaxed)
    }
}

/// The event model over real sockets: the handler protocol, partial input, deadlines, bounded output, capacity,
/// cutting connections short, many idle connections; and its epoll wrapper and deadline heap.
final class EventModelTests: FamilyServerTestCase {
    private var reactors: EventReactors!

    override func setUp() {
        super.setUp()
        reactors = try! EventReactors(count: 2)
    }

    override func tearDown() {
        reactors.stop()
        XCTAssertEqual(reactors.connectionCount, 0, "connections left on the reactors after stop()")
        super.tearDown()
    }

    private func echoServer(_ family: TestFamily, log: EventLog? = nil, capacity: Int? = nil) throws -> CountingServer {
        let model = EventModel(reactors: reactors, capacity: capacity) { _ in EventEcho(log: log) }
        return try CountingServer(address: address(family, .stream), handler: BaseRequestHandler.self, model: model)
    }

    func testEchoOnEveryFamily() throws {
        for family in TestFamily.allCases {
            if family == .ipv6 { try requireIPv6() }
            let server = try echoServer(family)
            try runServer(server) { try streamEchoClient($0) }
            XCTAssertEqual(server.ended.load(ordering: .relaxed), 3, "\(family): requestEnded calls")
            XCTAssertEqual(server.processingModel.activeRequests, 0, "\(family): requests left active")
        }
    }

    /// The README's and docs/library.md's example, on port 0.
    func testReadmeExampleServes() throws {
        final class Echo: StreamEventHandler {
            func opened(_ connection: EventConnection) { connection.idleTimeout = 300 }
            func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
                connection.write(bytes)
            }
        }
        let model = EventModel(reactors: reactors, capacity: 10_000) { _ in Echo() }
        let server = try TCPServer(
            address: try SocketAddress(parsing: "tcp://127.0.0.1:0"), handler: BaseRequestHandler.self, model: model)
        try runServer(server) { try streamEchoClient($0) }
    }

    func testPartialLinesAreBufferedUntilTheirLF() throws {
        let model = EventModel(reactors: reactors) { _ in EventUpperLines() }
        let server = try StreamServer(address: address(.ipv4, .stream), handler: BaseRequestHandler.self, model: model)
        try runServer(server) { address in
            let client = try Client.connect(address)
            defer { client.close() }
            try client.sendAll(Array("hel".utf8))
            usleep(50_000)
            try client.sendAll(Array("lo\nwor".utf8))
            try expect(try Client.readLine(client) == Array("HELLO\n".utf8), "the first line")
            try client.sendAll(Array("ld\n".utf8))
            try expect(try Client.readLine(client) == Array("WORLD\n".utf8), "the second line")
        }
    }

    func testHandlerDeadlineIsReached() throws {
        let model = EventModel(reactors: reactors) { _ in EventLateNotice() }
        let server = try StreamServer(address: address(.unixPath, .stream), handler: BaseRequestHandler.self, model: model)
        try runServer(server) { address in
            let client = try Client.connect(address)
            defer { client.close() }
            try expect(try Client.readToEnd(client) == Array("late\n".utf8), "the deadline's notice, then EOF")
        }
    }

    func testIdleTimeoutClosesOnlyIdleConnections() throws {
        let log = EventLog()
        let model = EventModel(reactors: reactors) { _ in EventIdle(log: log) }
        let server = try StreamServer(address: address(.ipv4, .stream), handler: BaseRequestHandler.self, model: model)
        let thread = try serving(server) {
            let idle = try Client.connect(server.serverAddress)
            defer { idle.close() }
            let busy = try Client.connect(server.serverAddress)
            defer { busy.close() }
            // The busy one talks every 50 ms for 0.6 s, past the idle one's timeout.
            for round in 0..<12 {
                try busy.sendAll(Array("\(round)\n".utf8))
                try expect(try Client.readLine(busy) == Array("\(round)\n".utf8), "busy echo \(round)")
                usleep(50_000)
            }
            try expect(try Client.readToEnd(idle).isEmpty, "the idle connection ends with EOF")
            try busy.sendAll(Array("still\n".utf8))
            try expect(try Client.readLine(busy) == Array("still\n".utf8), "the busy connection is still served")
        }
        server.shutdown()
        thread.join()
        server.serverClose()
        XCTAssertEqual(log.all, ["closed idle", "closed closed"])
    }

    /// A client whose line arrives while a handler holds the reactor past the client's idle timeout is served, not
    /// closed as idle: it is read before the reactor looks at the time (failed when idleness was judged by the
    /// time after the long handler).
    func testALineThatArrivesWhileTheReactorIsBusyKeepsTheConnection() throws {
        let reactors = try EventReactors(count: 1)
        defer { reactors.stop() }
        let model = EventModel(reactors: reactors) { _ in EventSpinningEcho() }
        let server = try StreamServer(address: address(.unixPath, .stream), handler: BaseRequestHandler.self, model: model)
        try runServer(server) { address in
            let talker = try Client.connect(address)
            defer { talker.close() }
            let spinner = try Client.connect(address)
            defer { spinner.close() }
            try talker.sendAll(Array("hello\n".utf8))
            try expect(try Client.readLine(talker) == Array("hello\n".utf8), "the first echo")
            try spinner.sendAll(Array("spin\n".utf8))
            // Echoed before the spin: the reactor is busy for 0.4 s from now, and the talker's line waits for it.
            try expect(try Client.readLine(spinner) == Array("spin\n".utf8), "the spinner's echo")
            try talker.sendAll(Array("one\n".utf8))
            try expect(try Client.readLine(talker) == Array("one\n".utf8), "the line sent while the reactor was busy")
        }
    }

    func testClientThatDoesNotReadStallsOnlyItselfWithBoundedOutput() throws {
        let log = EventLog()
        let server = try echoServer(.unixPath, log: log)
        let thread = try serving(server) {
            let flooder = try Client.connect(server.serverAddress)
            defer { flooder.close() }
            try flooder.setNonBlocking(true)
            // Send until the kernel takes no more: the server stopped reading once its output was over the limit.
            let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
            var sent = 0
            let deadline = MonotonicClock.seconds() + 20
            var idleRounds = 0
            while idleRounds < 20 && sent < 256 << 20 && MonotonicClock.seconds() < deadline {
                let count = chunk.withUnsafeBytes { Glibc.send(flooder.fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count > 0 {
                    sent += count
                    idleRounds = 0
                } else {
                    idleRounds += 1
                    usleep(10_000)
                }
            }
            try expect(sent < 256 << 20, "the server read \(sent) bytes from a client that reads nothing")
            try streamEchoClient(server.serverAddress)
        }
        server.shutdown()
        thread.join()
        server.processingModel.cutShort(server: server)
        server.serverClose()
        let most = log.all.compactMap { $0.hasPrefix("pending ") ? Int($0.dropFirst(8)) : nil }.max() ?? 0
        XCTAssertGreaterThan(most, 0, "output was buffered")
        XCTAssertLessThanOrEqual(most, 64 * 1024 + EventReactorsReadSize, "output buffered past the limit plus one read")
    }

    /// A connection that is no longer read (its input ended, the handler keeps it open) ends when the client resets
    /// it, instead of being reported as hung up on every wait.
    func testResetOfAConnectionNoLongerReadEndsIt() throws {
        let log = EventLog()
        let model = EventModel(reactors: reactors) { _ in EventKeepsOpen(log: log) }
        let server = try StreamServer(address: address(.ipv4, .stream), handler: BaseRequestHandler.self, model: model)
        let thread = try serving(server) {
            let client = try Client.connect(server.serverAddress)
            try client.shutdown(Int32(SHUT_WR))
            try expect(eventually { log.all == ["input ended"] }, "the input ended: \(log.all)")
            var linger = linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(client.fileDescriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            client.close()
            try expect(eventually { server.processingModel.activeRequests == 0 }, "the reset connection ended")
        }
        server.shutdown()
        thread.join()
        server.serverClose()
        XCTAssertEqual(log.all.first, "input ended")
        XCTAssertTrue(["failed \(ECONNRESET)", "failed \(EPIPE)"].contains(log.all.last ?? ""), "\(log.all)")
        XCTAssertEqual(log.all.count, 2)
    }

    func testCapacityHoldsClientsInTheBacklog() throws {
        let log = EventLog()
        let server = try echoServer(.ipv4, log: log, capacity: 2)
        let thread = try serving(server) {
            let clients = try (0..<4).map { _ in try Client.connect(server.serverAddress) }
            defer { clients.forEach { $0.close() } }
            try expect(eventually { log.count(of: "opened") == 2 }, "two connections taken")
            usleep(100_000)
            try expect(log.count(of: "opened") == 2, "\(log.count(of: "opened")) taken, more than the capacity 2")
            try clients[0].shutdown(Int32(SHUT_WR))
            try expect(try Client.readToEnd(clients[0]).isEmpty, "the first client's EOF")
            try expect(eventually { log.count(of: "opened") == 3 }, "one more taken once one ended")
        }
        server.shutdown()
        thread.join()
        server.processingModel.cutShort(server: server)
        server.serverClose()
        XCTAssertEqual(server.processingModel.activeRequests, 0)
    }

    func testCutShortEndsEveryConnectionOfTheServer() throws {
        let log = EventLog()
        let server = try echoServer(.unixAbstract, log: log)
        let other = try echoServer(.unixAbstract)
        let otherThread = try serving(other) {}
        let thread = try serving(server) {
            let clients = try (0..<3).map { _ in try Client.connect(server.serverAddress) }
            defer { clients.forEach { $0.close() } }
            let bystander = try Client.connect(other.serverAddress)
            defer { bystander.close() }
            try expect(eventually { log.count(of: "opened") == 3 }, "three connections taken")
            try expect(eventually { other.processingModel.activeRequests == 1 }, "the other server's connection taken")
            server.processingModel.cutShort(server: server)
            for client in clients {
                try expect(try Client.readToEnd(client).isEmpty, "a cut connection ends")
            }
            try bystander.sendAll(Array("here\n".utf8))
            try expect(try Client.readLine(bystander) == Array("here\n".utf8), "the other server's connection is served")
        }
        server.shutdown()
        thread.join()
        server.serverClose()
        XCTAssertEqual(log.count(of: "closed cutShort"), 3)
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 3)
        other.shutdown()
        otherThread.join()
        other.processingModel.cutShort(server: other)
        other.serverClose()
    }

    func testAThousandIdleConnectionsAreHeldAndServed() throws {
        let server = try echoServer(.ipv4)
        let thread = try serving(server) {
            var clients: [Socket] = []
            defer { clients.forEach { $0.close() } }
            for _ in 0..<1000 { clients.append(try Client.connect(server.serverAddress)) }
            try expect(eventually(timeout: 30) { server.processingModel.activeRequests == 1000 },
                       "\(server.processingModel.activeRequests) of 1000 connections held")
            XCTAssertEqual(reactors.connectionCount, 1000)
            for (index, client) in clients.enumerated() where index % 50 == 0 {
                try client.sendAll(Array("\(index)\n".utf8))
                try expect(try Client.readLine(client) == Array("\(index)\n".utf8), "echo on connection \(index)")
            }
        }
        server.shutdown()
        thread.join()
        XCTAssertTrue(eventually { server.processingModel.activeRequests == 0 }, "connections left after the clients closed")
        server.serverClose()
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 1000)
    }

    /// The serve loop runs on a reactor, and a connection it accepts is served by that very reactor while no other
    /// holds fewer: one connection at a time, every handler runs on the thread of the server's service actions.
    func testTheServeLoopRunsOnAReactorThatServesWhatItAccepts() throws {
        let threads = ThreadLog()
        final class Server: StreamServer, @unchecked Sendable {
            var threads: ThreadLog!
            override func serviceActions() {
                super.serviceActions()
                threads.record("loop")
            }
        }
        final class Echo: StreamEventHandler {
            let threads: ThreadLog
            init(threads: ThreadLog) { self.threads = threads }
            func opened(_ connection: EventConnection) { threads.record("handler") }
            func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) { connection.write(bytes) }
        }
        let model = EventModel(reactors: reactors) { _ in Echo(threads: threads) }
        let server = try Server(address: address(.ipv4, .stream), handler: BaseRequestHandler.self, model: model)
        server.threads = threads
        let serveThread = ConditionLock<pthread_t?>(nil)
        let thread = try TestThread {
            serveThread.withLock { $0 = pthread_self() }
            server.serveForever(pollInterval: 0.01)
        }
        defer { server.serverClose() }
        defer { thread.join() }
        defer { server.shutdown() }
        for round in 0..<5 {
            let client = try Client.connect(server.serverAddress)
            defer { client.close() }
            try client.sendAll(Array("\(round)\n".utf8))
            XCTAssertEqual(try Client.readLine(client), Array("\(round)\n".utf8))
            client.close()
            XCTAssertTrue(eventually { server.processingModel.activeRequests == 0 }, "round \(round) ended")
        }
        let loopThreads = threads.threads(of: "loop")
        let handlerThreads = threads.threads(of: "handler")
        XCTAssertEqual(loopThreads.count, 1, "the loop ran on one thread")
        XCTAssertEqual(handlerThreads, loopThreads, "every connection was served where it was accepted")
        let caller = try XCTUnwrap(serveThread.withLock { $0 })
        XCTAssertFalse(loopThreads.contains { pthread_equal($0, caller) != 0 }, "the loop left serveForever's thread")
    }

    /// startServing hands the loop to a reactor and returns at once: the server serves with no thread of the caller's,
    /// a waiting shutdown returns only once the loop has stopped and `ended` has run, and the server can serve again.
    func testStartServingNeedsNoThreadOfTheCaller() throws {
        let server = try echoServer(.unixPath)
        defer { server.serverClose() }
        for round in 0..<2 {
            let ended = ConditionLock(0)
            let caller = pthread_self()
            let endedOnCaller = Atomic<Bool>(false)
            XCTAssertTrue(server.startServing(pollInterval: 0.01) {
                endedOnCaller.store(pthread_equal(pthread_self(), caller) != 0, ordering: .relaxed)
                ended.withLock(notify: .all) { $0 += 1 }
            }, "round \(round): the event model runs the loop itself")
            try streamEchoClient(server.serverAddress)
            XCTAssertEqual(ended.withLock { $0 }, 0, "round \(round): ended before any shutdown")
            server.shutdown()
            XCTAssertEqual(ended.withLock { $0 }, 1, "round \(round): shutdown(wait:) returned before the loop ended")
            XCTAssertFalse(endedOnCaller.load(ordering: .relaxed), "round \(round): ended ran on the caller's thread")
        }
    }

    /// A shutdown asked for before startServing ends the loop the reactor is handed, as it makes the next serveForever
    /// return at once; under a model without a loop of its own startServing starts nothing, and serveForever serves.
    func testStartServingAfterShutdownEndsAndOtherModelsDecline() throws {
        let server = try echoServer(.ipv4)
        defer { server.serverClose() }
        server.shutdown()
        let ended = ConditionLock(false)
        XCTAssertTrue(server.startServing { ended.withLock(notify: .all) { $0 = true } })
        XCTAssertTrue(eventually(timeout: 10) { ended.withLock { $0 } }, "the loop ended at once")

        let threaded = try StreamServer(
            address: address(.ipv4, .stream), handler: StreamEchoHandler.self, model: ThreadingModel(blockOnClose: true))
        defer { threaded.serverClose() }
        XCTAssertFalse(threaded.startServing { XCTFail("ended called for a loop that never started") })
        try runServer(threaded) { try streamEchoClient($0) }
    }

    /// A handler may stop its own server with a waiting shutdown (its reactor runs the loop) and close it; the thread
    /// in serveForever returns.
    func testAHandlerShutsItsServerDownWithoutDeadlock() throws {
        final class Stopper: StreamEventHandler {
            func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
                connection.server.shutdown()
                connection.write(Array("bye\n".utf8))
                connection.close()
            }
        }
        let model = EventModel(reactors: reactors) { _ in Stopper() }
        let server = try StreamServer(address: address(.unixPath, .stream), handler: BaseRequestHandler.self, model: model)
        let returned = ConditionLock(false)
        let thread = try TestThread {
            server.serveForever(pollInterval: 0.01)
            returned.withLock(notify: .all) { $0 = true }
        }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        try client.sendAll(Array("stop\n".utf8))
        XCTAssertEqual(try Client.readToEnd(client), Array("bye\n".utf8))
        XCTAssertTrue(eventually(timeout: 10) { returned.withLock { $0 } }, "serveForever returned")
        thread.join()
        server.serverClose()
        XCTAssertEqual(server.processingModel.activeRequests, 0)
    }

    /// Stopping the reactors lets a serve loop they ran go: serveForever returns although nobody asked it to, and a
    /// server started on a stopped pool serves with a loop of its own (its connections are refused).
    func testStoppedReactorsReleaseTheServeLoop() throws {
        let server = try echoServer(.ipv4)
        let returned = ConditionLock(false)
        let thread = try TestThread {
            server.serveForever(pollInterval: 0.01)
            returned.withLock(notify: .all) { $0 = true }
        }
        try streamEchoClient(server.serverAddress)
        reactors.stop()
        XCTAssertTrue(eventually(timeout: 10) { returned.withLock { $0 } }, "serveForever returned when the reactors stopped")
        thread.join()
        let late = try TestThread { server.serveForever(pollInterval: 0.01) }
        let client = try Client.connect(server.serverAddress)
        defer { client.close() }
        XCTAssertEqual(try Client.readToEnd(client), [], "a connection to a stopped pool is closed unserved")
        server.shutdown()
        late.join()
        server.serverClose()
    }

    func testDatagramsAreRefused() throws {
        let model = EventModel(reactors: reactors) { _ in EventEcho() }
        let socket = try Socket(family: AF_INET, transport: .datagram)
        let datagram = Datagram(payload: [1], socket: socket)
        let server = try DatagramServer(address: address(.ipv4, .datagram), handler: DatagramEchoHandler.self)
        defer { server.serverClose() }
        XCTAssertThrowsError(try model.process(.datagram(datagram), clientAddress: server.serverAddress, server: server)) {
            XCTAssertEqual(($0 as? SocketError)?.errno, EOPNOTSUPP)
        }
        XCTAssertEqual(model.activeRequests, 0)
    }

    func testEventPollErrorsNameTheCallAndErrno() throws {
        let poll = try EventPoll()
        XCTAssertThrowsError(try poll.add(-1, interest: .readable, token: 1)) { error in
            let error = error as? SocketError
            XCTAssertEqual(error?.errno, EBADF)
            XCTAssertEqual(error?.syscall, "epoll_ctl(EPOLL_CTL_ADD)")
            XCTAssertEqual(error?.subject, "fd -1")
        }
    }

    func testEventPollReportsTokensAndReadiness() throws {
        let wakeup = try WakeupEvent()
        let poll = try EventPoll()
        try poll.add(wakeup.fileDescriptor, interest: [.readable, .writable], token: 42)
        var events = EventPoll.Events()
        try poll.wait(into: &events, timeout: 0)
        XCTAssertEqual(events.count, 1)
        XCTAssertEqual(events[0].token, 42)
        XCTAssertEqual(events[0].events, .writable)
        wakeup.signal()
        try poll.modify(wakeup.fileDescriptor, interest: .readable, token: 7)
        try poll.wait(into: &events, timeout: 1)
        XCTAssertEqual(events.count, 1)
        XCTAssertEqual(events[0].token, 7)
        XCTAssertEqual(events[0].events, .readable)
        try poll.remove(wakeup.fileDescriptor)
        try poll.wait(into: &events, timeout: 0)
        XCTAssertEqual(events.count, 0)
    }
}

/// The most a reactor reads at once, as the bound on output past the limit that one read's reply may add.
private let EventReactorsReadSize = 64 * 1024
