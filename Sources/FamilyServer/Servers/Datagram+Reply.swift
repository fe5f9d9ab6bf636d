import Glibc

extension Datagram {
    /// Sends `bytes` back to `sender`, the datagram's source, from the socket it arrived on.
    ///
    /// An inet sender gets the reply at its address. A Unix sender gets it only at the socket
    /// that sent the request (``UnixReplyTarget``): a reply that could reach another socket is
    /// dropped with a ``ReplyRefusal``. An unnamed sender (an unbound Unix client) cannot be
    /// answered, and nothing is sent.
    ///
    /// A datagram that a ``DatagramServer`` handles on its serving thread (the serial model) is
    /// answered with the others of its batch: the reply, checked now, waits in the batch and is
    /// sent with its replies by one `sendmmsg` once the batch was handled (the server then
    /// reports it, ``DatagramServer/replySent(size:to:)``, or its error). Elsewhere it is sent at
    /// once.
    /// - Returns: `true` when the reply was sent now; `false` when it waits in its batch, or
    ///   nothing was sent to an unnamed sender.
    /// - Throws: ``ReplyRefusal`` for a dropped reply; ``SocketError`` for `sendto`, or for a
    ///   Unix name a socket address cannot hold.
    @discardableResult
    public func sendReply(_ bytes: [UInt8], to sender: SocketAddress) throws -> Bool {
        if let replyBatch {
            _ = try bytes.withUnsafeBytes { payload in
                try replyBatch.addReply(payload, toDatagramFrom: sender, credentials: credentials, on: socket)
            }
            return false
        }
        guard
            let (destination, target) = try UnixReplyTarget.destination(
                ofReplyTo: sender, credentials: credentials, from: socket, batch: nil)
        else { return false }
        do {
            try withExtendedLifetime(target) { () throws(SocketError) in
                try socket.sendDatagram(bytes, to: destination)
            }
        } catch {
            throw target == nil ? error : SocketError("sendto", errno: error.errno, subject: sender.description)
        }
        return true
    }
}
