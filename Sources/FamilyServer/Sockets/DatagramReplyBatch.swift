import CShims
import Glibc

/// Replies collected while a batch of datagrams is handled, sent together by one `sendmmsg`
/// (``Socket/sendDatagrams(_:)``), in the order they were added.
///
/// The bytes of every reply go into one buffer that the batch keeps and reuses. A reply to a Unix
/// sender keeps its ``UnixReplyTarget`` (the sender's socket file held open) until it was sent.
///
/// One thread at a time: the serve loop of a ``DatagramServer`` owns its batch.
public final class DatagramReplyBatch: @unchecked Sendable {
    // @unchecked: only the serving thread that owns the batch touches it (DatagramServer).

    /// The most replies the batch holds; a full batch is sent before another reply is added.
    public let capacity: Int
    /// What hears of each reply once the batch was sent (``Socket/sendDatagrams(_:)``): its
    /// sender, its size, and `nil` or the error that refused it.
    public let report: (_ sender: SocketAddress, _ size: Int, _ error: SocketError?) -> Void
    private var bytes: [UInt8] = []
    private var replies: [Reply] = []
    /// The reply targets of Unix senders (absolute paths and abstract names) checked during this batch, by sender and
    /// the uid its datagram came with (``UnixReplyTarget``): their other datagrams of the batch, with the same uid,
    /// are answered at the same target without a second look.
    var checkedUnixSenders = [CheckedSender: UnixReplyTarget]()
    /// The entry of ``checkedUnixSenders`` used last: a client with several datagrams outstanding sends most of a
    /// batch, and its next datagram takes the target without a lookup.
    var lastCheckedUnixSender: (sender: CheckedSender, target: UnixReplyTarget)?

    /// One reply waiting to be sent.
    private struct Reply {
        var offset: Int
        var length: Int
        var destination: sockaddr_storage
        var destinationLength: socklen_t
        /// The request's source, for the report (not the `/proc/self/fd/N` the reply goes through).
        var sender: SocketAddress
        /// Keeps a Unix sender's socket file open until the reply was sent.
        var target: UnixReplyTarget?
    }

    /// A Unix sender's name and the uid its request came with.
    struct CheckedSender: Hashable {
        var sender: SocketAddress
        var uid: uid_t
    }

    /// Creates an empty batch of at most `capacity` replies (1 up to
    /// ``DatagramReceiveBatch/maximumCapacity``) that tells `report` how each one went once sent.
    public init(
        capacity: Int, report: @escaping (_ sender: SocketAddress, _ size: Int, _ error: SocketError?) -> Void
    ) {
        precondition((1...DatagramReceiveBatch.maximumCapacity).contains(capacity), "a batch of \(capacity) replies")
        self.capacity = capacity
        self.report = report
        replies.reserveCapacity(capacity)
    }

    /// How many replies wait.
    public var count: Int { replies.count }

    /// Whether the batch holds ``capacity`` replies.
    public var isFull: Bool { replies.count >= capacity }

    /// Adds a datagram of `payload` to `destination`, sent as it is: no ``UnixReplyTarget`` check
    /// (as with ``Socket/sendDatagram(_:to:)``), so that a reply to a Unix sender goes through
    /// ``Datagram/sendReply(_:to:)`` instead. A full batch must be sent first.
    /// - Throws: ``SocketError`` (`sendmmsg`, EINVAL or ENAMETOOLONG) for a Unix destination a
    ///   socket address cannot hold.
    public func add(_ payload: [UInt8], to destination: SocketAddress) throws(SocketError) {
        try add(payload, to: destination, sender: destination, target: nil)
    }

    /// Adds a datagram of the bytes `payload` points at (copied now) to `destination`, sent as it is,
    /// as the array form does.
    public func add(_ payload: UnsafeRawBufferPointer, to destination: SocketAddress) throws(SocketError) {
        try add(payload, to: destination, sender: destination, target: nil)
    }

    /// Adds the reply `payload` (copied now) to a datagram from `sender` that arrived on `socket` with `credentials`,
    /// checked as ``Datagram/sendReply(_:to:)`` checks it: an inet sender is answered at its address, a Unix sender
    /// only at the socket that sent the datagram (``UnixReplyTarget``, kept until sent), an unnamed sender not at all.
    /// A full batch is sent from `socket` first.
    /// - Returns: whether the reply was added (`false` for an unnamed sender).
    /// - Throws: ``ReplyRefusal`` for a reply that could reach another socket than the sender's; ``SocketError`` for a
    ///   Unix name a socket address cannot hold.
    @discardableResult
    public func addReply(
        _ payload: UnsafeRawBufferPointer, toDatagramFrom sender: SocketAddress, credentials: PeerCredentials?,
        on socket: Socket
    ) throws -> Bool {
        guard
            let (destination, target) = try UnixReplyTarget.destination(
                ofReplyTo: sender, credentials: credentials, from: socket, batch: self)
        else { return false }
        if isFull { socket.sendDatagrams(self) }
        try add(payload, to: destination, sender: sender, target: target)
        return true
    }

    /// Adds a reply of `payload` to `destination`, answering the request from `sender`.
    /// - Parameter target: The checked Unix reply target `destination` comes from, kept until sent.
    /// - Throws: ``SocketError`` (`sendmmsg`, EINVAL or ENAMETOOLONG) for a Unix destination a
    ///   socket address cannot hold; `precondition` that the batch is not full.
    func add(_ payload: [UInt8], to destination: SocketAddress, sender: SocketAddress, target: UnixReplyTarget?)
        throws(SocketError)
    {
        let refused = payload.withUnsafeBytes { bytes -> SocketError? in
            do throws(SocketError) {
                try add(bytes, to: destination, sender: sender, target: target)
                return nil
            } catch {
                return error
            }
        }
        if let refused { throw refused }
    }

    /// Adds a reply of the bytes `payload` points at (copied now).
    func add(
        _ payload: UnsafeRawBufferPointer, to destination: SocketAddress, sender: SocketAddress, target: UnixReplyTarget?
    ) throws(SocketError) {
        precondition(!isFull, "a full batch of \(capacity) replies")
        try Socket.checkUnixName(destination, call: "sendmmsg")
        var reply = Reply(
            offset: bytes.count, length: payload.count, destination: sockaddr_storage(), destinationLength: 0,
            sender: sender, target: target)
        destination.withSockAddr { sa, length in
            withUnsafeMutableBytes(of: &reply.destination) { storage in
                storage.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(length)))
            }
            reply.destinationLength = length
        }
        bytes.append(contentsOf: payload)
        replies.append(reply)
    }

    /// Sends every reply from `fd` and empties the batch; reports each reply's sender, size and,
    /// for one the kernel refused, its errno.
    fileprivate func send(from fd: Int32, reporting report: (SocketAddress, Int, Int32?) -> Void) {
        defer {
            bytes.removeAll(keepingCapacity: true)
            replies.removeAll(keepingCapacity: true)
            checkedUnixSenders.removeAll(keepingCapacity: true)
            lastCheckedUnixSender = nil
        }
        guard !replies.isEmpty else { return }
        var outgoing = [cshims_dgram_reply](repeating: cshims_dgram_reply(), count: replies.count)
        // Each reply's fields are read in place: a copy of a Reply would retain its sender and target.
        bytes.withUnsafeBytes { raw in
            for index in replies.indices {
                outgoing[index].bytes = UnsafeRawPointer(raw.baseAddress).map { $0 + replies[index].offset }
                outgoing[index].length = replies[index].length
                outgoing[index].address = replies[index].destination
                outgoing[index].address_length = replies[index].destinationLength
            }
            _ = cshims_send_batch(fd, &outgoing, UInt32(outgoing.count))
        }
        for index in replies.indices {
            let error = outgoing[index].error
            report(replies[index].sender, replies[index].length, error == 0 ? nil : error)
        }
    }
}

extension Socket {
    /// Sends the replies of `batch` with `sendmmsg` (MSG_NOSIGNAL), in order, and empties it;
    /// then tells the batch's ``DatagramReplyBatch/report`` of each, in order: `nil` once sent, or
    /// the ``SocketError`` (`sendmmsg`, naming the sender) that refused it. A reply the kernel
    /// refuses (EAGAIN on a full send buffer, ECONNREFUSED, …) fails alone: the others are still
    /// sent.
    public func sendDatagrams(_ batch: DatagramReplyBatch) {
        batch.send(from: fileDescriptor) { sender, size, errno in
            batch.report(sender, size, errno.map { SocketError("sendmmsg", errno: $0, subject: sender.description) })
        }
    }
}
