import Glibc

/// Buffered input of a request (Python's `rfile`): the bytes of a connection, read as the handler
/// asks for them, or the bytes of one datagram.
///
/// Before it blocks for more input it calls ``beforeBlocking``, which the stream handler points at
/// its writer's `flush`: replies written while the client's pipelined requests are still in the
/// buffer go out together in one write, and none waits while the handler waits for the client.
///
/// Besides the socket's own receive timeout (``receiveTimeout``, reset by each byte that arrives),
/// a ``deadline`` and a ``minimumRate`` bound the time the reader waits however slowly the peer
/// trickles: a wait that would outlast them is cut short by lowering SO_RCVTIMEO to the time left,
/// and fails with ``ReadDeadlineError``. SO_RCVTIMEO is changed only while one of them is nearer
/// than the receive timeout, so a reader without them costs no extra system call.
public final class BufferedReader {
    private let socket: Socket?
    private var storage: [UInt8]
    private var start = 0
    private var end: Int
    private var atEnd: Bool
    /// Called before a read that has to wait for the peer.
    public var beforeBlocking: (() throws -> Void)?
    /// The receive timeout the socket has (SO_RCVTIMEO, as ``StreamRequestHandler`` sets it from its
    /// `timeout`); `nil` when it has none. The reader restores it after a nearer limit lowered it.
    public var receiveTimeout: Double?
    /// The time (``MonotonicClock/seconds()``) by which the data a read waits for must have arrived; `nil`
    /// for none. A read that is still waiting then fails with ``ReadDeadlineError/Reason/deadline``.
    public var deadline: Double?
    /// The least average inbound rate of the connection; `nil` for none. A read still waiting when the
    /// bytes received so far fall below it fails with ``ReadDeadlineError/Reason/minimumRate``.
    public var minimumRate: MinimumRate?
    /// Every byte received from the socket so far.
    public private(set) var receivedCount = 0
    /// Whether SO_RCVTIMEO is lowered below ``receiveTimeout`` for a nearer limit, and for which.
    private var lowered: ReadDeadlineError.Reason?

    /// How many bytes the first receive asks for; an idle connection costs no more than this.
    public static let initialChunkSize = 2 * 1024
    /// The most one receive asks for; each receive that fills its chunk doubles the next one.
    public static let maxChunkSize = 64 * 1024
    private var chunkSize = BufferedReader.initialChunkSize

    /// A reader over a connected socket.
    public init(socket: Socket) {
        self.socket = socket
        self.storage = []
        self.end = 0
        self.atEnd = false
    }

    /// A reader over bytes already received (a datagram); it ends after them.
    public init(bytes: [UInt8]) {
        self.socket = nil
        self.storage = bytes
        self.end = bytes.count
        self.atEnd = true
    }

    /// Bytes received and not yet consumed.
    public var bufferedCount: Int { end - start }

    /// Reads up to `count` bytes, waiting until that many arrived or the input ended. A negative
    /// `count` reads to the end, as Python's `read(-1)` does.
    /// - Returns: fewer than `count` bytes only at the end of the input; empty once it ended.
    public func read(_ count: Int) throws -> [UInt8] {
        if count < 0 { return try readToEnd() }
        while bufferedCount < count, try fill() {}
        return take(min(count, bufferedCount))
    }

    /// Waits until at least one byte is buffered, consuming nothing.
    /// - Returns: `false` when the input ended with nothing buffered.
    public func waitForData() throws -> Bool {
        if bufferedCount > 0 { return true }
        return try fill()
    }

    /// Reads whatever is buffered, or if nothing is, waits for the next chunk from the peer
    /// (Python's `read1`). Empty only at the end of the input.
    public func readAvailable() throws -> [UInt8] {
        if bufferedCount == 0 { _ = try fill() }
        return take(bufferedCount)
    }

    /// Reads one line, up to and including its LF.
    ///
    /// - Parameter limit: the most bytes to return; a longer line comes back cut at `limit`
    ///   bytes without its LF (the rest stays for the next call), as in Python. `nil` or a
    ///   negative value: no limit (Python's `readline(-1)`).
    /// - Returns: the line with its LF; without one only at the end of the input or at `limit`;
    ///   empty once the input ended.
    public func readline(limit: Int? = nil) throws -> [UInt8] {
        let limit = limit.flatMap { $0 < 0 ? nil : $0 }
        var scanned = 0
        while true {
            let available = bufferedCount
            let window = limit.map { min($0, available) } ?? available
            if let newline = storage[(start + scanned)..<(start + window)].firstIndex(of: 0x0A) {
                return take(newline - start + 1)
            }
            if let limit, available >= limit { return take(limit) }
            scanned = window
            guard try fill() else { return take(bufferedCount) }
        }
    }

    /// Reads everything until the peer closes its side.
    public func readToEnd() throws -> [UInt8] {
        while try fill() {}
        return take(bufferedCount)
    }

    private func take(_ count: Int) -> [UInt8] {
        let bytes = Array(storage[start..<(start + count)])
        start += count
        if start == end {
            start = 0
            end = 0
        }
        return bytes
    }

    /// Receives more bytes into the buffer; returns false at the end of the input.
    private func fill() throws -> Bool {
        guard !atEnd, let socket else { return false }
        try beforeBlocking?()
        if start > 0 && start == end {
            start = 0
            end = 0
        } else if start > storage.count / 2 {
            storage.replaceSubrange(0..<(end - start), with: storage[start..<end])
            end -= start
            start = 0
        }
        if storage.count - end < chunkSize {
            // Array(repeating:) rather than repeatElement: appending a Repeated element by element
            // through unspecialised generic code costs ~5 ms per 16 KiB in a debug build.
            storage += [UInt8](repeating: 0, count: chunkSize - (storage.count - end))
        }
        if deadline != nil || minimumRate != nil || lowered != nil {
            try applyLimits(to: socket)
        }
        let received: Int
        do {
            received = try storage.withUnsafeMutableBytes { raw in
                try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: raw[end..<(end + chunkSize)]))
            }
        } catch let error as SocketError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            // The lowered timeout is nearer than the socket's own: it is the one that expired.
            if let lowered { throw ReadDeadlineError(lowered) }
            throw error
        }
        receivedCount += received
        if received == 0 {
            atEnd = true
            return false
        }
        if received == chunkSize && chunkSize < Self.maxChunkSize { chunkSize *= 2 }
        end += received
        return true
    }

    /// Lowers SO_RCVTIMEO to the time left before the nearest of ``deadline`` and ``minimumRate``
    /// when that is nearer than ``receiveTimeout``, restores it when no longer, and fails at once when
    /// the time is up.
    private func applyLimits(to socket: Socket) throws {
        var nearest: (time: Double, reason: ReadDeadlineError.Reason)?
        if let deadline { nearest = (deadline, .deadline) }
        if let rate = minimumRate?.deadline(afterReceiving: receivedCount), rate < nearest?.time ?? .infinity {
            nearest = (rate, .minimumRate)
        }
        if let nearest {
            let left = nearest.time - MonotonicClock.seconds()
            if left <= 0 { throw ReadDeadlineError(nearest.reason) }
            if left < receiveTimeout ?? .infinity {
                try socket.setReceiveTimeout(left)
                lowered = nearest.reason
                return
            }
        }
        if lowered != nil {
            try socket.setReceiveTimeout(receiveTimeout)
            lowered = nil
        }
    }
}
