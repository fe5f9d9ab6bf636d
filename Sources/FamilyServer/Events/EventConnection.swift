import Glibc

/// One connection served by an ``EventModel``, as its ``StreamEventHandler`` sees it: where it came from, what it
/// may write, when it ends.
///
/// Owned by one reactor thread: use it only from the handler's calls (it is not `Sendable`). Writing and closing
/// never block: output the client does not take at once is buffered, and ``close()`` takes effect once that buffer
/// is sent. A connection holds no buffer while idle — reads go through its reactor's one buffer — so thousands of
/// idle connections cost little more than their sockets.
public final class EventConnection {
    /// The accepted socket, in the mode it was accepted in: the reactor reads and writes it with `MSG_DONTWAIT`, so
    /// it never blocks. Send through the connection's `write` methods, not on the socket.
    public let socket: Socket
    /// The client's address.
    public let clientAddress: SocketAddress
    /// The server that accepted it.
    public let server: BaseServer
    /// When it was taken, in ``MonotonicClock/seconds()``.
    public let openedAt: Double

    /// Seconds without a byte read or written after which the connection is closed (``EventCloseReason/idle``);
    /// `nil` for none.
    public var idleTimeout: Double? {
        didSet { reactor.scheduleDeadline(of: self) }
    }

    /// A time (``MonotonicClock/seconds()``) at which the handler's ``StreamEventHandler/deadlineReached(on:)`` is
    /// called, then cleared; `nil` for none. For a request that must be complete by then, or a rate to check.
    public var deadline: Double? {
        didSet { reactor.scheduleDeadline(of: self) }
    }

    /// While more than this many bytes of output wait for the client, the connection is not read: a client that sends
    /// without reading its replies stalls itself, and the buffer stays bounded by this plus one reply. 64 KiB by
    /// default.
    public var outputLimit = 64 * 1024

    /// Bytes received so far.
    public internal(set) var bytesReceived = 0

    /// Bytes the client has taken so far.
    public private(set) var bytesSent = 0

    /// Bytes written by the handler that the client has not taken yet.
    public var pendingOutput: Int { output.count - outputSent }

    /// Whether ``close()`` was called (or the connection failed): writes are dropped from then on.
    public var isClosing: Bool { closeRequested || failure != nil }

    // The reactor's bookkeeping, used on its thread only.
    let token: UInt64
    let request: Request
    let model: EventModel
    /// Strong, not weak: the reactor drops the connection from its table when it closes, so no cycle outlives it
    /// (and a weak reference's side table on a reactor that lives until exit is a leak to LeakSanitizer, which cannot
    /// follow the encoded pointer to it).
    let reactor: EventReactor
    var handler: (any StreamEventHandler)?
    var output: [UInt8] = []
    var outputSent = 0
    var closeRequested = false
    var inputEnded = false
    var failure: SocketError?
    var lastActivity: Double
    /// The due time of this connection's entry in the reactor's deadlines that is not stale, if any.
    var scheduledDue: Double?
    /// What epoll watches the socket for now.
    var interest: EventMask = .readable

    init(token: UInt64, request: Request, socket: Socket, clientAddress: SocketAddress, server: BaseServer,
         model: EventModel, reactor: EventReactor, now: Double) {
        self.token = token
        self.request = request
        self.socket = socket
        self.clientAddress = clientAddress
        self.server = server
        self.model = model
        self.reactor = reactor
        self.openedAt = now
        self.lastActivity = now
    }

    /// Sends `bytes` to the client: at once as far as the socket takes them, the rest once it has room. Dropped once
    /// the connection is closing.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosing, !bytes.isEmpty else { return }
        var offset = 0
        if pendingOutput == 0 {
            offset = sendNow(bytes)
            if offset == bytes.count || failure != nil { return }
        }
        if outputSent > 0 && outputSent >= output.count / 2 {
            output.removeFirst(outputSent)
            outputSent = 0
        }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        output.append(contentsOf: UnsafeBufferPointer(start: rest.baseAddress?.assumingMemoryBound(to: UInt8.self), count: rest.count))
    }

    /// Sends `bytes` to the client: at once as far as the socket takes them, the rest once it has room.
    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Closes the connection once the buffered output is sent; nothing more is read.
    public func close() {
        closeRequested = true
    }

    /// Sends what the socket takes now; returns the count. A failure is recorded and ends the connection.
    private func sendNow(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count {
            let sent = Glibc.send(
                socket.fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            if sent > 0 {
                offset += sent
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code != EAGAIN && code != EWOULDBLOCK {
                failure = SocketError("send", errno: code, subject: socket.description)
            }
            break
        }
        if offset > 0 {
            bytesSent += offset
            lastActivity = reactor.passStarted
        }
        return offset
    }

    /// Sends buffered output as far as the socket takes it (the reactor, when the socket is writable).
    func flush() {
        guard pendingOutput > 0, failure == nil else { return }
        let sent = output.withUnsafeBytes { sendNow(UnsafeRawBufferPointer(rebasing: $0[outputSent...])) }
        outputSent += sent
        if outputSent == output.count {
            output = []
            outputSent = 0
        }
    }

    /// When the reactor must look at this connection again for time: the idle timeout or the handler's deadline.
    var nextDue: Double? {
        let idle = idleTimeout.map { lastActivity + $0 }
        switch (idle, deadline) {
        case (let idle?, let deadline?): return min(idle, deadline)
        case (let idle?, nil): return idle
        case (nil, let deadline): return deadline
        }
    }
}
