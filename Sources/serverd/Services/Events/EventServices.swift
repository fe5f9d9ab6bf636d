import FamilyServer

/// RFC 862 under the event model: every byte back until the client closes.
final class EchoEventHandler: ServiceEventHandler {
    override func serve(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        connection.write(bytes)
    }
}

/// RFC 863 under the event model: read and drop.
final class DiscardEventHandler: ServiceEventHandler {}

/// RFC 867 under the event model: one `ctime` line, CRLF-terminated, then close.
final class DaytimeEventHandler: ServiceEventHandler {
    override func start(on connection: EventConnection) {
        connection.write(ctimeNow() + [0x0D, 0x0A])
        connection.close()
    }
}

/// `[ctime] LINE\n` for each LF-terminated line under the event model, as ``StampHandler``: a partial line is kept
/// until its LF arrives; one longer than `max-line` bytes before its LF ends the connection, and so does one whose LF
/// has not arrived `request-timeout` seconds after its first byte. A last line without LF is stamped at end of input.
final class StampEventHandler: ServiceEventHandler {
    /// The line received so far, without its LF; at most `max-line` bytes.
    private var line: [UInt8] = []

    override func serve(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        var rest = bytes[...]
        while !rest.isEmpty && !connection.isClosing {
            // The line's clock starts with its first byte.
            if line.isEmpty && requestDeadline == nil && policy.requestTimeout > .zero {
                requestDeadline = MonotonicClock.seconds() + policy.requestTimeout.seconds
            }
            let end = rest.firstIndex(of: 0x0A)
            let piece = rest[..<(end ?? rest.endIndex)]
            guard line.count + piece.count <= policy.maxLine else {
                context.logger.warning("\(label): closing connection from \(connection.clientAddress): line longer than \(policy.maxLine) bytes")
                connection.close()
                return
            }
            line += piece
            guard let end else { return }
            stamp(on: connection)
            rest = rest[(end + 1)...]
        }
    }

    override func inputEnded(on connection: EventConnection) {
        if !line.isEmpty && !connection.isClosing { stamp(on: connection) }
        connection.close()
    }

    private func stamp(on connection: EventConnection) {
        if line.last == 0x0D { line.removeLast() }
        connection.write([0x5B] + ctimeNow() + [0x5D, 0x20] + line + [0x0A])
        line.removeAll(keepingCapacity: line.count <= 4096)
        requestDeadline = nil
    }
}
