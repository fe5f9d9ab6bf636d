import FamilyServer

/// Every datagram service: echo sends each datagram back, discard drops it, daytime answers any
/// datagram with the `ctime` line, stamp answers `[ctime] PAYLOAD` (trailing CR/LF dropped).
final class ServiceDatagramHandler: DatagramRequestHandler {
    override func handle() throws {
        let payload = datagram.payload
        // The serving thread set the service of this very datagram (the daemon serves datagrams on that thread).
        switch (server as! ServiceDatagramServer).service {
        case .echo:
            try wfile.write(payload)
        case .discard, .exec:
            break
        case .daytime:
            try wfile.write(ctimeNow() + [0x0D, 0x0A])
        case .stamp:
            var end = payload.endIndex
            while end > payload.startIndex, payload[end - 1] == 0x0A || payload[end - 1] == 0x0D { end -= 1 }
            try wfile.write([0x5B] + ctimeNow() + [0x5D, 0x20] + payload[..<end])
        }
    }

    /// Sends the reply, and counts it for the listener's status block (no connection line: a datagram flood must
    /// not flood the log).
    override func finish() throws {
        try super.finish()
        let size = wfile.collected.count
        if size > 0 { context.counters.replySent(size: size) }
    }
}
