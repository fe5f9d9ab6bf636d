/// The object that serves one request (Python's `BaseRequestHandler`).
///
/// The server creates a fresh instance per request and calls ``run()``, which calls ``setup()``,
/// then ``handle()``, then ``finish()`` — `finish` also when `handle` throws. Subclass it and
/// override ``handle()``; read what came in from ``request``.
open class BaseRequestHandler {
    /// The request: a connection or a datagram.
    public let request: Request
    /// Who sent it.
    public let clientAddress: SocketAddress
    /// The server that received it.
    public let server: BaseServer

    /// Creates the handler for one request. Override to initialise stored properties of a subclass.
    public required init(request: Request, clientAddress: SocketAddress, server: BaseServer) {
        self.request = request
        self.clientAddress = clientAddress
        self.server = server
    }

    /// Prepares for ``handle()``. Does nothing by default.
    open func setup() throws {}

    /// Serves the request. Does nothing by default.
    open func handle() throws {}

    /// Cleans up after ``handle()``, even when it threw. Does nothing by default.
    open func finish() throws {}

    /// Runs ``setup()``, ``handle()`` and ``finish()`` in order. If `handle` throws, `finish` still
    /// runs and `handle`'s error is the one rethrown.
    public final func run() throws {
        try setup()
        do {
            try handle()
        } catch {
            try? finish()
            throw error
        }
        try finish()
    }
}
