import CShims
import Glibc

/// One end of the `SOCK_SEQPACKET` socketpair between a forking model's serving process and one of its pre-forked
/// workers (``ForkingModel/preforkedWorkers``).
///
/// The serving process passes each connection with ``pass(_:clientAddress:)``: one message whose bytes are the
/// client's `sockaddr` and whose SCM_RIGHTS descriptor is the connection. The worker takes it with
/// ``nextConnection(family:)``, serves it and answers with ``reportDone()``, a one-byte message. Either side closing
/// its end is the end of the worker: the worker reads end of file and exits, the serving process sees a hang-up
/// (``readReports()``) when the worker exited or was killed.
struct WorkerChannel: Sendable {
    /// The descriptor of this end (close-on-exec), -1 once closed.
    private(set) var fileDescriptor: Int32

    /// A new socketpair: one end for the serving process, one for the worker.
    /// - Throws: ``SocketError`` for `socketpair`.
    static func pair() throws(SocketError) -> (parent: WorkerChannel, worker: WorkerChannel) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
            throw SocketError("socketpair(AF_UNIX, SOCK_SEQPACKET)", errno: errno)
        }
        return (WorkerChannel(fileDescriptor: fds[0]), WorkerChannel(fileDescriptor: fds[1]))
    }

    /// Closes this end.
    mutating func close() {
        if fileDescriptor >= 0 { _ = Glibc.close(fileDescriptor) }
        fileDescriptor = -1
    }

    // MARK: - The serving process's end

    /// Passes `connection` to the worker, with its client's address; the caller then closes its own copy.
    /// - Throws: ``SocketError`` for `sendmsg`: EPIPE or ECONNRESET when the worker is gone.
    func pass(_ connection: Socket, clientAddress: SocketAddress) throws(SocketError) {
        var passed = [connection.fileDescriptor]
        let fd = fileDescriptor
        let sent = clientAddress.withSockAddr { address, length in
            cshims_send_with_fds(fd, address, Int(length), nil, 0, &passed, 1)
        }
        if sent < 0 { throw SocketError("sendmsg(SCM_RIGHTS) to worker", errno: errno, subject: clientAddress.description) }
    }

    /// Reads the worker's reports without waiting: how many connections it finished since the last call, and
    /// whether it hung up (exited or was killed; a failed read counts as that too).
    func readReports() -> (done: Int, hungUp: Bool) {
        var done = 0
        var byte: UInt8 = 0
        while true {
            let count = recv(fileDescriptor, &byte, 1, Int32(MSG_DONTWAIT))
            if count > 0 {
                done += 1
                continue
            }
            if count < 0 && errno == EINTR { continue }
            let wouldBlock = count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            return (done, !wouldBlock)
        }
    }

    // MARK: - The worker's end

    /// Waits for the next connection. `nil` when the serving process closed its end (the worker retires) or the
    /// message carried no connection.
    /// - Parameter family: The address family of the connections (the listener's).
    func nextConnection(family: Int32) -> (Socket, SocketAddress)? {
        var storage = sockaddr_storage()
        var received: Int32 = -1
        var count: Int
        repeat {
            count = withUnsafeMutableBytes(of: &storage) { bytes in
                cshims_recv_with_fd(fileDescriptor, bytes.baseAddress, bytes.count, 0, &received)
            }
        } while count < 0 && errno == EINTR
        guard count > 0, received >= 0 else {
            if received >= 0 { _ = Glibc.close(received) }
            return nil
        }
        let client = SocketAddress(storage: storage, length: socklen_t(count), transport: .stream)
            ?? SocketAddress(.stream, .unnamed)
        return (Socket(owning: received, family: family, transport: .stream), client)
    }

    /// Tells the serving process that the connection it passed last is over.
    /// - Returns: whether the serving process still listens (`false`: it closed its end).
    @discardableResult
    func reportDone() -> Bool {
        var byte: UInt8 = 1
        var count: Int
        repeat {
            count = send(fileDescriptor, &byte, 1, Int32(MSG_NOSIGNAL))
        } while count < 0 && errno == EINTR
        return count == 1
    }
}
