import CoreMetrics
import Synchronization

/// What every server reports through swift-metrics, so that a program using FamilyServer can count its requests
/// with any metrics backend: bootstrap one (`MetricsSystem.bootstrap(…)`) before creating servers, or give a
/// factory of your own to ``BaseServer/metricsFactory``. Without either, swift-metrics' no-op backend makes each
/// report a call that does nothing.
///
/// Each metric carries the dimension ``addressDimension`` with the server's address (``SocketAddress``'s
/// description, e.g. `tcp://127.0.0.1:7000`, with the port the kernel chose for port 0):
///
/// | label | kind | counts |
/// |---|---|---|
/// | `familyserver_requests_total` | counter | requests admitted by ``BaseServer/verifyRequest(_:clientAddress:)`` |
/// | `familyserver_requests_refused_total` | counter | requests that `verifyRequest` refused |
/// | `familyserver_requests_active` | meter | requests handed to the processing model and not ended yet |
/// | `familyserver_received_bytes_total` | counter | bytes a handler's `rfile` received (stream) or datagram payloads |
/// | `familyserver_sent_bytes_total` | counter | bytes a handler's `wfile` sent (stream) or datagram replies |
///
/// Under ``ForkingModel`` the handler runs in a child process: the byte counters are reported there, in the
/// child's copy of the backend, which a backend that exports from the parent's memory never sees. Requests and
/// the active meter are counted in the serving process under every model.
///
/// A class, so that reading a server's ``BaseServer/metrics`` for each request retains one object, not five.
public final class ServerMetrics: Sendable {
    /// The dimension every metric of a server carries: its address.
    public static let addressDimension = "address"

    /// Requests admitted.
    public let requests: Counter
    /// Requests refused by `verifyRequest`.
    public let refused: Counter
    /// Requests in flight.
    public let active: Meter
    /// Bytes received by handlers.
    public let receivedBytes: Counter
    /// Bytes sent by handlers.
    public let sentBytes: Counter

    /// Creates the metrics of the server at `address`.
    /// - Parameters:
    ///   - address: The server's address, the value of the ``addressDimension`` dimension.
    ///   - factory: The backend; swift-metrics' bootstrapped one by default.
    public init(address: SocketAddress, factory: any MetricsFactory = MetricsSystem.factory) {
        let dimensions = [(Self.addressDimension, address.description)]
        requests = Counter(label: "familyserver_requests_total", dimensions: dimensions, factory: factory)
        refused = Counter(label: "familyserver_requests_refused_total", dimensions: dimensions, factory: factory)
        active = Meter(label: "familyserver_requests_active", dimensions: dimensions, factory: factory)
        receivedBytes = Counter(label: "familyserver_received_bytes_total", dimensions: dimensions, factory: factory)
        sentBytes = Counter(label: "familyserver_sent_bytes_total", dimensions: dimensions, factory: factory)
    }
}
