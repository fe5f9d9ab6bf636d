import FamilyServer
import Glibc
import XCTest

/// No descriptor, thread or child process accumulates: 1,000 connections in each model leave the
/// process with what it had after the first few (read from /proc/self/fd, /proc/self/task and
/// every thread's `children`), and closing the server gives back the rest.
final class ResourceGrowthTests: FamilyServerTestCase {
    private let connections = 1000
    /// Clients open at once.
    private let batch = 10

    /// Opens `batch` connections, sends a line on each and ends its side, then reads every reply.
    private func runBatch(_ address: SocketAddress) throws {
        var clients: [Socket] = []
        defer { clients.forEach { $0.close() } }
        for _ in 0..<batch {
            let client = try Client.connect(address)
            clients.append(client)
            try client.sendAll(Array("hello world\n".utf8))
            try client.shutdown(Int32(SHUT_WR))
        }
        for client in clients {
            XCTAssertEqual(try Client.readToEnd(client), Array("hello world\n".utf8))
        }
    }

    private func check(_ model: TestModel, family: TestFamily) throws {
        let initialDescriptors = Descriptors()
        let initialThreads = threadCount()
        let initialChildren = childProcesses()

        weak var released: BaseServer?
        try serveAndMeasure(model, family: family) { released = $0 }

        // The server is closed and released (so its eventfd is closed): everything it had is given back.
        XCTAssertTrue(eventually { released == nil }, "the server is still referenced after serverClose")
        XCTAssertTrue(eventually { Descriptors().isWithin(initialDescriptors) },
                      "after close \(Descriptors()), before the server \(initialDescriptors): \(openDescriptors())")
        XCTAssertTrue(eventually { threadCount() <= initialThreads },
                      "\(threadCount()) threads after close, \(initialThreads) before the server")
        XCTAssertTrue(childProcesses().isSubset(of: initialChildren), "children left: \(childProcesses())")
    }

    /// The counts that must not grow.
    private struct Resources: CustomStringConvertible {
        var descriptors = Descriptors()
        var threads = threadCount()
        var children = childProcesses()

        var description: String { "\(descriptors), \(threads) threads, \(children.count) children" }
    }

    /// Serves one phase: `batches` batches of clients (see ``serving(_:pollInterval:client:)``:
    /// for the forking model, from a child process forked before the loop starts), then waits
    /// until every request ended and the loop reaped its workers, measures, and stops the loop.
    private func phase(_ server: BaseServer, batches: Int) throws -> Resources {
        let address = server.serverAddress
        let thread = try serving(server, pollInterval: 0.05) {
            for _ in 0..<batches { try runBatch(address) }
        }
        defer {
            server.shutdown()
            XCTAssertTrue(thread.join())
        }
        XCTAssertTrue(eventually { server.processingModel.activeRequests == 0 })
        if let forking = server.processingModel as? ForkingModel {
            XCTAssertTrue(eventually { forking.activeChildren.isEmpty })
        }
        return Resources()
    }

    private func serveAndMeasure(_ model: TestModel, family: TestFamily, made: (BaseServer) -> Void) throws {
        let processingModel = model.make()
        let server = try StreamServer(address: address(family, .stream), handler: StreamEchoHandler.self, model: processingModel)
        made(server)
        defer { server.serverClose() }

        // Warm up, then take the baseline once the first workers are done.
        let baseline = try phase(server, batches: 1)
        let after = try phase(server, batches: connections / batch)

        XCTAssertTrue(after.descriptors.isWithin(baseline.descriptors),
                      "\(model): after \(connections) connections \(after), before \(baseline): \(openDescriptors())")
        // Threading keeps parked workers: about one per request in flight (a batch), a few more
        // when a batch arrives before the last one's workers parked. The other models start no
        // thread. Two more for libdispatch, which starts and ends worker threads of its own.
        let allowedThreads = baseline.threads + (model == .threading ? 2 * batch : 0) + 2
        XCTAssertLessThanOrEqual(after.threads, allowedThreads, "\(model): after \(after), before \(baseline)")
        if let threading = processingModel as? ThreadingModel {
            XCTAssertLessThanOrEqual(threading.threadCount, 2 * batch)
        }
        XCTAssertTrue(after.children.isSubset(of: baseline.children), "\(model): after \(after), before \(baseline)")
    }

    func testSerialModel() throws { try check(.serial, family: .ipv4) }
    func testThreadingModel() throws { try check(.threading, family: .ipv4) }
    func testForkingModel() throws { try check(.forking, family: .ipv4) }
    func testSerialModelUnix() throws { try check(.serial, family: .unixPath) }
    func testThreadingModelUnix() throws { try check(.threading, family: .unixPath) }
    func testForkingModelUnix() throws { try check(.forking, family: .unixPath) }
}
