/// A handler for one datagram (Python's `DatagramRequestHandler`): ``rfile`` holds the datagram,
/// and what the handler writes to ``wfile`` is sent back to the sender as one datagram on finish.
///
/// Unlike Python, nothing is sent when nothing was written, a sender without an address (an
/// unbound Unix datagram client) gets no reply instead of an error, and a Unix sender gets the
/// reply only at the socket that sent the request (``Datagram/sendReply(_:to:)``). On the serial model the
/// reply is sent together with the others of its batch once the batch was handled.
open class DatagramRequestHandler: BaseRequestHandler {
    /// The datagram's bytes.
    public private(set) var rfile: BufferedReader!
    /// The reply, sent on finish.
    public private(set) var wfile: BufferedWriter!

    /// The received datagram.
    public var datagram: Datagram { request.datagram! }

    /// Creates ``rfile`` over the datagram and an empty ``wfile``.
    open override func setup() throws {
        guard let datagram = request.datagram else {
            preconditionFailure("DatagramRequestHandler serves datagrams, not connections")
        }
        rfile = BufferedReader(bytes: datagram.payload)
        wfile = BufferedWriter()
    }

    /// Sends what ``wfile`` collected back to the sender, if anything and if it has an address, and reports the
    /// datagram's size to the server's ``BaseServer/metrics``, and the reply's once it was sent (a reply that waits
    /// in its batch is reported by the server when the batch goes out, ``DatagramServer/replySent(size:to:)``).
    /// - Throws: ``ReplyRefusal`` when the reply could reach another socket than the sender's.
    open override func finish() throws {
        server.metrics.receivedBytes.increment(by: datagram.payload.count)
        let reply = wfile.collected
        guard !reply.isEmpty else { return }
        guard try datagram.sendReply(reply, to: clientAddress) else { return }
        if let server = server as? DatagramServer {
            server.replySent(size: reply.count, to: clientAddress)
        } else {
            server.metrics.sentBytes.increment(by: reply.count)
        }
    }
}
