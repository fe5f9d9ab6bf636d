import Glibc

extension Datagram {
    /// Sends `bytes` back to `sender`, the datagram's source, from the socket it arrived on.
    ///
    /// An inet sender gets the reply at its address. A Unix sender gets it only at the socket
    /// that sent the request (``UnixReplyTarget``): a reply that could reach another socket is
    /// dropped with a ``ReplyRefusal``. An unnamed sender (an unbound Unix client) cannot be
    /// answered, and nothing is sent.
    /// - Throws: ``ReplyRefusal`` for a dropped reply; ``SocketError`` for `sendto`.
    public func sendReply(_ bytes: [UInt8], to sender: SocketAddress) throws {
        switch sender.endpoint {
        case .unnamed:
            return
        case .inet:
            try socket.sendDatagram(bytes, to: sender)
        case .unixPath, .unixAbstract:
            let target = try UnixReplyTarget.resolve(sender: sender, credentials: credentials, from: socket)
            do {
                try withExtendedLifetime(target) { () throws(SocketError) in
                    try socket.sendDatagram(bytes, to: target.address)
                }
            } catch {
                throw SocketError("sendto", errno: error.errno, subject: sender.description)
            }
        }
    }
}
