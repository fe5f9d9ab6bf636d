import CoreMetrics
import FamilyServer
import Synchronization
import XCTest

/// A swift-metrics backend that keeps each counter's total and each meter's value, by label and dimensions.
private final class RecordingMetrics: MetricsFactory, Sendable {
    private final class Value: CounterHandler, MeterHandler, RecorderHandler, TimerHandler, Sendable {
        let value = Mutex<Double>(0)
        func increment(by amount: Int64) { value.withLock { $0 += Double(amount) } }
        func increment(by amount: Double) { value.withLock { $0 += amount } }
        func decrement(by amount: Double) { value.withLock { $0 -= amount } }
        func set(_ newValue: Int64) { value.withLock { $0 = Double(newValue) } }
        func set(_ newValue: Double) { value.withLock { $0 = newValue } }
        func record(_ newValue: Int64) { set(newValue) }
        func record(_ newValue: Double) { set(newValue) }
        func recordNanoseconds(_ duration: Int64) { set(duration) }
        func reset() { set(Int64(0)) }
    }

    private let values = Mutex<[String: Value]>([:])

    private func value(_ label: String, _ dimensions: [(String, String)]) -> Value {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return values.withLock { values in
            if let value = values[key] { return value }
            let value = Value()
            values[key] = value
            return value
        }
    }

    /// The value of the metric `label` with these dimensions; `nil` if it was never created.
    func read(_ label: String, _ dimensions: [(String, String)]) -> Double? {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return values.withLock { $0[key] }.map { value in value.value.withLock { $0 } }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> CounterHandler { value(label, dimensions) }
    func makeMeter(label: String, dimensions: [(String, String)]) -> MeterHandler { value(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> RecorderHandler {
        value(label, dimensions)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> TimerHandler { value(label, dimensions) }
    func destroyCounter(_ handler: CounterHandler) {}
    func destroyMeter(_ handler: MeterHandler) {}
    func destroyRecorder(_ handler: RecorderHandler) {}
    func destroyTimer(_ handler: TimerHandler) {}
}

/// A stream server that refuses every request.
private final class RefusingServer: StreamServer, @unchecked Sendable {
    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool { false }
}

/// ``ServerMetrics``: what a server reports through swift-metrics, read back from a recording backend set as the
/// server's ``BaseServer/metricsFactory``.
final class ServerMetricsTests: FamilyServerTestCase {
    private func dimensions(_ server: BaseServer) -> [(String, String)] {
        [(ServerMetrics.addressDimension, server.serverAddress.description)]
    }

    /// Three echo exchanges of 12 bytes, under the serial and threading models: three requests, none active at the
    /// end, 36 bytes each way.
    func testStreamServerReportsRequestsActiveAndBytes() throws {
        for model in [TestModel.serial, .threading] {
            let metrics = RecordingMetrics()
            let server = try makeServer(.ipv4, .stream, model)
            server.metricsFactory = metrics
            try runServer(server) { try streamEchoClient($0) }
            let dimensions = dimensions(server)
            XCTAssertEqual(metrics.read("familyserver_requests_total", dimensions), 3, "\(model)")
            XCTAssertEqual(metrics.read("familyserver_requests_active", dimensions), 0, "\(model)")
            XCTAssertEqual(metrics.read("familyserver_received_bytes_total", dimensions), 36)
            XCTAssertEqual(metrics.read("familyserver_sent_bytes_total", dimensions), 36)
            XCTAssertEqual(metrics.read("familyserver_requests_refused_total", dimensions), 0)
        }
    }

    /// Under the forking model the parent counts the requests and their ends; the bytes pass in the children.
    func testForkingServerCountsRequestsInTheParent() throws {
        let metrics = RecordingMetrics()
        let server = try makeServer(.ipv4, .stream, .forking)
        server.metricsFactory = metrics
        try runServer(server) { try streamEchoClient($0) }
        let dimensions = dimensions(server)
        XCTAssertEqual(metrics.read("familyserver_requests_total", dimensions), 3)
        XCTAssertEqual(metrics.read("familyserver_requests_active", dimensions), 0)
    }

    /// Three datagrams of 12 bytes and their replies.
    func testDatagramServerReportsDatagramsAndReplies() throws {
        let metrics = RecordingMetrics()
        let server = try makeServer(.ipv4, .datagram, .serial)
        server.metricsFactory = metrics
        try runServer(server) { try datagramEchoClient($0) }
        let dimensions = dimensions(server)
        XCTAssertEqual(metrics.read("familyserver_requests_total", dimensions), 3)
        XCTAssertEqual(metrics.read("familyserver_received_bytes_total", dimensions), 36)
        XCTAssertEqual(metrics.read("familyserver_sent_bytes_total", dimensions), 36)
    }

    /// A ``ConnectionServer`` (systemd's `Accept=yes`) counts its one connection like the serve loop would.
    func testConnectionServerCountsItsOneConnection() throws {
        let listener = try Socket(family: AF_INET, transport: .stream)
        defer { listener.close() }
        try listener.bind(to: address(.ipv4, .stream))
        try listener.listen(backlog: 1)
        let client = try Client.connect(try listener.localAddress())
        defer { client.close() }
        guard let (accepted, _) = try listener.accept() else { return XCTFail("no connection") }
        let metrics = RecordingMetrics()
        let server = try ConnectionServer(connection: accepted, handler: StreamEchoHandler.self)
        server.metricsFactory = metrics
        try client.sendAll(Array("one\n".utf8))
        server.serveForever()
        server.serverClose()
        XCTAssertEqual(try Client.readToEnd(client), Array("one\n".utf8))
        let dimensions = dimensions(server)
        XCTAssertEqual(metrics.read("familyserver_requests_total", dimensions), 1)
        XCTAssertEqual(metrics.read("familyserver_requests_active", dimensions), 0)
        XCTAssertEqual(metrics.read("familyserver_received_bytes_total", dimensions), 4)
        XCTAssertEqual(metrics.read("familyserver_sent_bytes_total", dimensions), 4)
    }

    /// A request `verifyRequest` refuses is counted as refused, not as a request.
    func testRefusedRequestsAreCountedApart() throws {
        let metrics = RecordingMetrics()
        let server = try RefusingServer(address: address(.ipv4, .stream), handler: StreamEchoHandler.self)
        server.metricsFactory = metrics
        try runServer(server) { address in
            // The refused connection is closed unread: the client sees its end or a reset.
            let reply = (try? Client.exchange(address, Array("hello\n".utf8))) ?? []
            try expect(reply.isEmpty, "a refused request got \(reply)")
        }
        let dimensions = dimensions(server)
        XCTAssertEqual(metrics.read("familyserver_requests_refused_total", dimensions), 3)
        XCTAssertEqual(metrics.read("familyserver_requests_total", dimensions), 0)
    }
}
