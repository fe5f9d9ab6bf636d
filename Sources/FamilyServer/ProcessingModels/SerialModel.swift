/// Runs each request to its end on the serving thread before taking the next (Python's plain
/// `TCPServer`). Simple and cheap; one slow client holds up everyone else.
public final class SerialModel: ProcessingModel {
    /// Creates the serial model.
    public init() {}

    public func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) {
        server.runRequest(request, clientAddress: clientAddress)
        server.endRequest(request, clientAddress: clientAddress)
    }

    public var activeRequests: Int { 0 }
    /// Always `nil`: one request at a time, whatever is set.
    public var capacity: Int? {
        get { nil }
        set {}
    }
    public var forksWorkers: Bool { false }
    public var runsRequestsOnServingThread: Bool { true }
    public func collect(server: BaseServer) {}
    public func close(server: BaseServer) {}
    public func cutShort(server: BaseServer) {}
}
