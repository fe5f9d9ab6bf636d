import FamilyServer
import Glibc
import Synchronization
import XCTest

/// Reads a line, then answers with the process id of the process that serves it.
private final class ProcessIDHandler: StreamRequestHandler {
    override func handle() throws {
        _ = try rfile.readline()
        try wfile.write("\(getpid())\n")
    }
}

/// Counts the requests it was told are over (``BaseServer/requestEnded(_:clientAddress:)``).
private final class CountingServer: TCPServer, @unchecked Sendable {
    let ended = Atomic<Int>(0)

    override func requestEnded(_ request: Request, clientAddress: SocketAddress) {
        ended.add(1, ordering: .relaxed)
    }
}

/// The forking model's pool of pre-forked workers (`ForkingModel(preforkedWorkers:)`). The test thread drives the
/// server itself (``BaseServer/handleRequest()``, ``BaseServer/serviceActions()``) and forks from that one thread;
/// a client connects before the request is taken (the backlog holds it) and reads its answer afterwards.
final class PreforkedWorkerTests: FamilyServerTestCase {
    override func setUpWithError() throws {
        try XCTSkipIf(!TestModel.inThisRun.contains(.forking), "forks, which this run does not")
    }

    /// A connection the server took, with its line sent: the caller reads the answer.
    private func takeConnection(_ server: BaseServer) throws -> Socket {
        let client = try Client.connect(server.serverAddress)
        try client.sendAll(Array("line\n".utf8))
        server.handleRequest()
        return client
    }

    /// The process id in the answer of a connection taken by ``takeConnection(_:)``.
    private func servingProcess(_ client: Socket) throws -> pid_t {
        defer { client.close() }
        let text = String(decoding: try Client.readToEnd(client), as: UTF8.self)
        return try XCTUnwrap(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), "answer '\(text)'")
    }

    /// Collects until `condition` holds.
    private func collecting(_ server: BaseServer, until condition: () -> Bool) -> Bool {
        eventually {
            server.serviceActions()
            return condition()
        }
    }

    private func makeServer(_ model: ForkingModel) throws -> CountingServer {
        try CountingServer(address: address(.ipv4, .stream), handler: ProcessIDHandler.self, model: model)
    }

    func testOneWorkerServesConnectionAfterConnection() throws {
        let model = ForkingModel(preforkedWorkers: 2)
        let server = try makeServer(model)
        var servers: [pid_t] = []
        for index in 1...5 {
            servers.append(try servingProcess(try takeConnection(server)))
            XCTAssertTrue(collecting(server) { model.activeRequests == 0 }, "connection \(index) ends")
            XCTAssertEqual(server.ended.load(ordering: .relaxed), index, "requestEnded once per connection")
        }
        XCTAssertEqual(Set(servers).count, 1, "one idle worker serves every connection in turn: \(servers)")
        XCTAssertNotEqual(servers[0], getpid())
        XCTAssertEqual(model.preforkedWorkerProcesses, [servers[0]])
        server.serverClose()
        XCTAssertFalse(childProcesses().contains(servers[0]), "the worker exits and is reaped at close")
    }

    /// Beyond the pool's size a connection gets a child of its own; ``ForkingModel/maxChildren`` counts both.
    func testConnectionsBeyondThePoolGetChildrenOfTheirOwn() throws {
        let model = ForkingModel(maxChildren: 3, preforkedWorkers: 2)
        let server = try makeServer(model)
        let clients = try (0..<3).map { _ in try takeConnection(server) }
        XCTAssertEqual(model.activeRequests, 3)
        XCTAssertTrue(server.isAtCapacity, "two workers and one child make maxChildren 3")
        let workers = model.preforkedWorkerProcesses
        XCTAssertEqual(workers.count, 2)
        let servers = try clients.map(servingProcess)
        XCTAssertEqual(Set(servers).count, 3, "three processes served: \(servers)")
        XCTAssertEqual(Set(servers).intersection(workers).count, 2, "two of them pool workers: \(servers), \(workers)")
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 })
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 3)
        let oneShot = try XCTUnwrap(Set(servers).subtracting(workers).first)
        XCTAssertFalse(childProcesses().contains(oneShot), "the child of its own is reaped")
        XCTAssertEqual(model.preforkedWorkerProcesses, workers, "the workers stay")
        server.serverClose()
    }

    /// A worker killed in the middle of a connection: the connection counts as ended, the worker is reaped, and the
    /// next connection gets a fresh one.
    func testAKilledWorkerIsReplacedAndItsRequestEnds() throws {
        let model = ForkingModel(preforkedWorkers: 1)
        let server = try makeServer(model)
        let client = try Client.connect(server.serverAddress)
        server.handleRequest()
        let worker = try XCTUnwrap(model.preforkedWorkerProcesses.first)
        XCTAssertEqual(model.activeChildren, [worker], "the worker serves, waiting for the line")
        XCTAssertEqual(kill(worker, SIGKILL), 0)
        XCTAssertEqual(try Client.readToEnd(client), [], "the connection closes with the worker")
        client.close()
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 && model.preforkedWorkerProcesses.isEmpty })
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 1, "the killed worker's request is over")
        XCTAssertFalse(childProcesses().contains(worker), "reaped")
        let next = try servingProcess(try takeConnection(server))
        XCTAssertNotEqual(next, worker)
        XCTAssertEqual(model.preforkedWorkerProcesses, [next], "a fresh worker")
        server.serverClose()
    }

    /// ``ForkingModel/retireWorkers(server:)``: an idle worker leaves at once, a busy one after its connection;
    /// the next connection goes to a worker forked anew.
    func testRetiredWorkersLeaveAndFreshOnesServe() throws {
        let model = ForkingModel(preforkedWorkers: 2)
        let server = try makeServer(model)
        let idle = try servingProcess(try takeConnection(server))
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 })
        let busyClient = try Client.connect(server.serverAddress)
        server.handleRequest()
        let busy = try XCTUnwrap(model.activeChildren.first)
        XCTAssertEqual(busy, idle, "the idle worker took the connection")
        let secondClient = try Client.connect(server.serverAddress)
        server.handleRequest()
        let second = try XCTUnwrap(model.activeChildren.subtracting([busy]).first)
        try secondClient.sendAll(Array("line\n".utf8))
        XCTAssertEqual(try servingProcess(secondClient), second)
        XCTAssertTrue(collecting(server) { model.activeRequests == 1 }, "the second worker is idle again")

        model.retireWorkers(server: server)
        XCTAssertTrue(collecting(server) { !childProcesses().contains(second) }, "the idle worker leaves at once")
        XCTAssertTrue(model.preforkedWorkerProcesses.contains(busy), "the busy one serves on")
        try busyClient.sendAll(Array("line\n".utf8))
        XCTAssertEqual(try servingProcess(busyClient), busy, "and finishes its connection")
        XCTAssertTrue(collecting(server) { model.preforkedWorkerProcesses.isEmpty && !childProcesses().contains(busy) })
        let fresh = try servingProcess(try takeConnection(server))
        XCTAssertFalse([idle, second].contains(fresh), "a worker forked anew serves")
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 })
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 4)
        server.serverClose()
    }

    /// Closing the server ends its workers; no process and no descriptor stays behind.
    func testCloseLeavesNoWorkerAndNoDescriptor() throws {
        let before = Descriptors()
        let childrenBefore = childProcesses()
        let model = ForkingModel(preforkedWorkers: 3)
        let server = try makeServer(model)
        let clients = try (0..<3).map { _ in try takeConnection(server) }
        let workers = model.preforkedWorkerProcesses
        XCTAssertEqual(workers.count, 3)
        for client in clients { _ = try servingProcess(client) }
        server.serverClose()
        XCTAssertEqual(model.activeRequests, 0)
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 3)
        XCTAssertTrue(childProcesses().isSubset(of: childrenBefore), "every worker reaped: \(childProcesses())")
        XCTAssertTrue(eventually { Descriptors().isWithin(before) }, "\(Descriptors()) after, \(before) before")
    }
}
