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

    /// A connection the server took, without its line: it keeps its worker busy until the caller sends one.
    private func takeWaitingConnection(_ server: BaseServer) throws -> Socket {
        let client = try Client.connect(server.serverAddress)
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

    /// A server whose pool is filled: one pass of the serve loop forks the workers.
    private func makeServer(_ model: ForkingModel) throws -> CountingServer {
        let server = try CountingServer(address: address(.ipv4, .stream), handler: ProcessIDHandler.self, model: model)
        server.serviceActions()
        XCTAssertEqual(model.preforkedWorkerProcesses.count, model.preforkedWorkers, "the pool is filled")
        return server
    }

    func testOneWorkerServesConnectionAfterConnection() throws {
        let model = ForkingModel(preforkedWorkers: 1)
        let server = try makeServer(model)
        let worker = try XCTUnwrap(model.preforkedWorkerProcesses.first)
        for index in 1...5 {
            XCTAssertEqual(try servingProcess(try takeConnection(server)), worker, "connection \(index)")
            XCTAssertTrue(collecting(server) { model.activeRequests == 0 }, "connection \(index) ends")
            XCTAssertEqual(server.ended.load(ordering: .relaxed), index, "requestEnded once per connection")
        }
        XCTAssertNotEqual(worker, getpid())
        XCTAssertEqual(model.preforkedWorkerProcesses, [worker], "the same worker all along")
        server.serverClose()
        XCTAssertFalse(childProcesses().contains(worker), "the worker exits and is reaped at close")
    }

    /// Beyond the pool's size a connection gets a child of its own; ``ForkingModel/maxChildren`` counts both.
    func testConnectionsBeyondThePoolGetChildrenOfTheirOwn() throws {
        let model = ForkingModel(maxChildren: 3, preforkedWorkers: 2)
        let server = try makeServer(model)
        let workers = model.preforkedWorkerProcesses
        let clients = try (0..<3).map { _ in try takeWaitingConnection(server) }
        XCTAssertEqual(model.activeRequests, 3)
        XCTAssertTrue(server.isAtCapacity, "two workers and one child make maxChildren 3")
        for client in clients { try client.sendAll(Array("line\n".utf8)) }
        let servers = try clients.map(servingProcess)
        XCTAssertEqual(Set(servers).count, 3, "three processes served: \(servers)")
        XCTAssertEqual(Set(servers).intersection(workers), workers, "two of them the pool's workers: \(servers)")
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 })
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 3)
        let oneShot = try XCTUnwrap(Set(servers).subtracting(workers).first)
        XCTAssertFalse(childProcesses().contains(oneShot), "the child of its own is reaped")
        XCTAssertEqual(model.preforkedWorkerProcesses, workers, "the workers stay")
        server.serverClose()
    }

    /// A worker killed in the middle of a connection: the connection counts as ended, the worker is reaped and
    /// replaced, and the fresh one serves the next connection.
    func testAKilledWorkerIsReplacedAndItsRequestEnds() throws {
        let model = ForkingModel(preforkedWorkers: 1)
        let server = try makeServer(model)
        let worker = try XCTUnwrap(model.preforkedWorkerProcesses.first)
        let client = try takeWaitingConnection(server)
        XCTAssertEqual(model.activeChildren, [worker], "the worker serves, waiting for the line")
        XCTAssertEqual(kill(worker, SIGKILL), 0)
        XCTAssertEqual(try Client.readToEnd(client), [], "the connection closes with the worker")
        client.close()
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 && !childProcesses().contains(worker) })
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 1, "the killed worker's request is over")
        let fresh = try XCTUnwrap(model.preforkedWorkerProcesses.first)
        XCTAssertNotEqual(fresh, worker)
        XCTAssertEqual(try servingProcess(try takeConnection(server)), fresh, "the fresh worker serves")
        server.serverClose()
    }

    /// ``ForkingModel/retireWorkers(server:)``: an idle worker leaves at once, a busy one after its connection;
    /// workers forked anew take their places.
    func testRetiredWorkersLeaveAndFreshOnesServe() throws {
        let model = ForkingModel(preforkedWorkers: 2)
        let server = try makeServer(model)
        let old = model.preforkedWorkerProcesses
        let busyClient = try takeWaitingConnection(server)
        let busy = try XCTUnwrap(model.activeChildren.first)
        let idle = try XCTUnwrap(old.subtracting([busy]).first)

        model.retireWorkers(server: server)
        XCTAssertTrue(collecting(server) { !childProcesses().contains(idle) }, "the idle worker leaves at once")
        XCTAssertTrue(model.preforkedWorkerProcesses.contains(busy), "the busy one serves on")
        let fresh = model.preforkedWorkerProcesses.subtracting(old)
        XCTAssertEqual(fresh.count, 2, "two workers forked anew beside the retiring one")
        try busyClient.sendAll(Array("line\n".utf8))
        XCTAssertEqual(try servingProcess(busyClient), busy, "and finishes its connection")
        XCTAssertTrue(collecting(server) { model.preforkedWorkerProcesses == fresh && !childProcesses().contains(busy) })
        XCTAssertTrue(fresh.contains(try servingProcess(try takeConnection(server))), "a worker forked anew serves")
        XCTAssertTrue(collecting(server) { model.activeRequests == 0 })
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 2)
        server.serverClose()
    }

    /// Closing the server ends its workers; no process and no descriptor stays behind.
    func testCloseLeavesNoWorkerAndNoDescriptor() throws {
        let before = Descriptors()
        let childrenBefore = childProcesses()
        let model = ForkingModel(preforkedWorkers: 3)
        let server = try makeServer(model)
        let workers = model.preforkedWorkerProcesses
        let clients = try (0..<3).map { _ in try takeWaitingConnection(server) }
        for client in clients { try client.sendAll(Array("line\n".utf8)) }
        XCTAssertEqual(Set(try clients.map(servingProcess)), workers)
        server.serverClose()
        XCTAssertEqual(model.activeRequests, 0)
        XCTAssertEqual(server.ended.load(ordering: .relaxed), 3)
        XCTAssertTrue(childProcesses().isSubset(of: childrenBefore), "every worker reaped: \(childProcesses())")
        server.serviceActions()
        XCTAssertTrue(childProcesses().isSubset(of: childrenBefore), "none forked after the close")
        XCTAssertTrue(eventually { Descriptors().isWithin(before) }, "\(Descriptors()) after, \(before) before")
    }
}
