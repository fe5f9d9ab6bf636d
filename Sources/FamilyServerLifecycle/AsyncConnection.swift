import FamilyServer
import Glibc

/// One accepted connection of an ``AsyncStreamServer``, read and written with `async` calls.
///
/// A read or write that can proceed at once does so on the calling task; one that must wait for the
/// peer waits on a thread of its own, never on a thread of the cooperative pool. Cancelling the task
/// that waits shuts the connection down (the wait ends and the call throws `CancellationError`).
///
/// One task at a time should read, and one at a time write. ``close()`` ends the connection at once;
/// the descriptor itself is released with the last reference to the connection, so that it can never
/// be reused under a read or write still in flight.
public final class AsyncConnection: Sendable {
    /// The connected socket, in blocking mode.
    public let socket: Socket
    /// The peer's address (an unnamed Unix address when the client never bound one).
    public let clientAddress: SocketAddress

    /// Wraps a connected stream socket.
    public init(socket: Socket, clientAddress: SocketAddress) {
        self.socket = socket
        self.clientAddress = clientAddress
    }

    /// Reads what the peer sent, at most `maxBytes` bytes, waiting until something arrives.
    /// - Returns: the bytes, or `nil` at the end of the stream (the peer shut its side down).
    /// - Throws: `SocketError` for `recv` (ECONNRESET when the peer reset the
    ///   connection), `CancellationError` when the task was cancelled.
    public func read(maxBytes: Int = 4096) async throws -> [UInt8]? {
        precondition(maxBytes > 0, "read(maxBytes:) needs a positive count")
        let socket = self.socket
        let received: [UInt8]
        if let ready = try Self.receive(socket, maxBytes: maxBytes, flags: Int32(MSG_DONTWAIT)) {
            received = ready
        } else {
            received = try await waiting { try Self.receive(socket, maxBytes: maxBytes, flags: 0) ?? [] }
        }
        try Task.checkCancellation()
        return received.isEmpty ? nil : received
    }

    /// Sends all of `bytes`, waiting while the peer does not take them.
    /// - Throws: `SocketError` for `send` (EPIPE or ECONNRESET when the peer has
    ///   gone; never SIGPIPE), `CancellationError` when the task was cancelled.
    public func write(_ bytes: [UInt8]) async throws {
        let socket = self.socket
        let sent = try Self.sendWithoutWaiting(socket, bytes)
        if sent < bytes.count {
            let rest = Array(bytes[sent...])
            try await waiting { try socket.sendAll(rest) }
        }
        try Task.checkCancellation()
    }

    /// Ends the connection in both directions: the peer sees the end of the stream, and a read or
    /// write in flight returns. Later calls do nothing harmful.
    public func close() {
        try? socket.shutdown(Int32(SHUT_RDWR))
    }

    /// Runs a blocking call on its own thread; the task's cancellation shuts the connection down,
    /// which ends the call.
    private func waiting<T: Sendable>(_ call: @escaping @Sendable () throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            try await BlockingCall.run(call)
        } onCancel: {
            self.close()
        }
    }

    /// One `recv`; `nil` when `MSG_DONTWAIT` was given and nothing is there yet, an empty array at
    /// the end of the stream.
    private static func receive(_ socket: Socket, maxBytes: Int, flags: Int32) throws(SocketError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let fd = socket.fileDescriptor
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, maxBytes, flags) }
            if count >= 0 { return Array(buffer[..<count]) }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN where flags & Int32(MSG_DONTWAIT) != 0: return nil
            default: throw SocketError("recv", errno: code, subject: socket.description)
            }
        }
    }

    /// Sends what the kernel takes without waiting; returns the count sent.
    private static func sendWithoutWaiting(_ socket: Socket, _ bytes: [UInt8]) throws(SocketError) -> Int {
        let fd = socket.fileDescriptor
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if count >= 0 {
                offset += count
                continue
            }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN: return offset
            default: throw SocketError("send", errno: code, subject: socket.description)
            }
        }
        return offset
    }
}
