import Glibc

/// A handler for one connection with buffered ``rfile`` and ``wfile`` (Python's
/// `StreamRequestHandler`). Override ``BaseRequestHandler/handle()`` and read from `rfile`, write
/// to `wfile`.
open class StreamRequestHandler: BaseRequestHandler {
    /// The connection's input.
    public private(set) var rfile: BufferedReader!
    /// The connection's output.
    public private(set) var wfile: BufferedWriter!

    /// Seconds a read or write may wait before failing with EAGAIN; `nil` waits forever.
    /// Override to set one.
    open var timeout: Double? { nil }

    /// Set TCP_NODELAY on TCP connections; ignored on Unix sockets, which have no Nagle algorithm.
    open var disableNagleAlgorithm: Bool { false }

    /// `wfile`'s buffer size; 0 (the default) writes through. A buffered writer is flushed
    /// whenever `rfile` waits for the peer and on finish.
    open var writeBufferSize: Int { 0 }

    /// The connected socket.
    public var connection: Socket { request.connection! }

    /// Applies ``timeout`` and ``disableNagleAlgorithm`` and creates ``rfile`` and ``wfile``.
    open override func setup() throws {
        guard let connection = request.connection else {
            preconditionFailure("StreamRequestHandler serves connections, not datagrams")
        }
        if let timeout {
            try connection.setTimeouts(receive: timeout, send: timeout)
        }
        if disableNagleAlgorithm && connection.family != AF_UNIX {
            try connection.setOption(level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1, label: "TCP_NODELAY")
        }
        let writer = BufferedWriter(socket: connection, bufferSize: writeBufferSize)
        let reader = BufferedReader(socket: connection)
        reader.receiveTimeout = timeout
        if writeBufferSize > 0 {
            reader.beforeBlocking = { try writer.flush() }
        }
        rfile = reader
        wfile = writer
    }

    /// Flushes ``wfile``, ignoring a peer that has gone, and reports the bytes received and sent to the server's
    /// ``BaseServer/metrics``. Overriders should call `super`.
    open override func finish() throws {
        try? wfile?.flush()
        if let rfile, let wfile {
            server.metrics.receivedBytes.increment(by: rfile.receivedCount)
            server.metrics.sentBytes.increment(by: wfile.sentCount)
        }
    }
}
