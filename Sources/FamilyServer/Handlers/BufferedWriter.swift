/// Output of a request (Python's `wfile`): bytes for a connection, or the reply to a datagram.
///
/// With ``bufferSize`` 0 (the default, as in Python) every ``write(_:)-([UInt8])`` goes straight to the
/// socket in full. With a buffer, writes collect until it fills, ``flush()`` is called, the
/// handler's reader waits for more input, or the handler finishes.
public final class BufferedWriter {
    private let socket: Socket?
    private var pending: [UInt8] = []
    /// Bytes collected before a write goes out; 0 writes through at once.
    public var bufferSize: Int
    /// Every byte sent to the socket so far (for a datagram reply: none, the reply goes out on finish).
    public private(set) var sentCount = 0

    /// A writer to a connected socket.
    public init(socket: Socket, bufferSize: Int = 0) {
        self.socket = socket
        self.bufferSize = bufferSize
    }

    /// A writer that only collects, for a datagram reply.
    public init() {
        self.socket = nil
        self.bufferSize = Int.max
    }

    /// What has been written and not yet sent (for a datagram handler: the whole reply).
    public var collected: [UInt8] { pending }

    /// Writes `bytes` (all of them, retrying partial writes) and returns their count.
    @discardableResult
    public func write(_ bytes: [UInt8]) throws -> Int {
        guard let socket else {
            pending += bytes
            return bytes.count
        }
        if pending.isEmpty && bytes.count >= bufferSize {
            try socket.sendAll(bytes)
            sentCount += bytes.count
            return bytes.count
        }
        pending += bytes
        if pending.count >= bufferSize { try flush() }
        return bytes.count
    }

    /// Writes the UTF-8 bytes of `text`.
    @discardableResult
    public func write(_ text: String) throws -> Int {
        try write(Array(text.utf8))
    }

    /// Sends everything buffered. Does nothing for a datagram reply, which goes out on finish.
    public func flush() throws {
        guard let socket, !pending.isEmpty else { return }
        defer { pending.removeAll(keepingCapacity: true) }
        try socket.sendAll(pending)
        sentCount += pending.count
    }
}
