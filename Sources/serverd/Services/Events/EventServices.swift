import FamilyServer
import Glibc

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
        end = .done
        connection.close()
    }
}

/// `[ctime] LINE\n` for each LF-terminated line under the event model, as ``StampHandler``: a partial line is kept
/// until its LF arrives; one longer than `max-line` bytes before its LF ends the connection, and so does one whose LF
/// has not arrived `request-timeout` seconds after its first byte. A last line without LF is stamped at end of input.
/// The replies to the lines of one chunk go out in one write.
final class StampEventHandler: ServiceEventHandler {
    /// The line received so far, without its LF; at most `max-line` bytes.
    private var line: [UInt8] = []
    /// The replies to the chunk being handled, written at its end.
    private var replies: [UInt8] = []
    /// `[ctime] `, read once per chunk.
    private var prefix: [UInt8] = []

    override func serve(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
        defer { send(on: connection) }
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            // The line's clock starts with its first byte.
            if line.isEmpty && requestDeadline == nil && policy.requestTimeout > .zero {
                requestDeadline = MonotonicClock.seconds() + policy.requestTimeout.seconds
            }
            let newline = memchr(base + offset, 0x0A, bytes.count - offset).map { base.distance(to: UnsafeRawPointer($0)) }
            let length = (newline ?? bytes.count) - offset
            guard line.count + length <= policy.maxLine else {
                context.logger.warning("\(label): closing connection from \(connection.clientAddress): line longer than \(policy.maxLine) bytes")
                end = .maxLine
                send(on: connection)
                connection.close()
                return
            }
            line.append(contentsOf: UnsafeBufferPointer(start: (base + offset).assumingMemoryBound(to: UInt8.self), count: length))
            guard let newline else { return }
            stampLine()
            offset = newline + 1
        }
    }

    override func inputEnded(on connection: EventConnection) {
        if !line.isEmpty {
            stampLine()
            send(on: connection)
        }
        connection.close()
    }

    /// Adds the reply to the line received to ``replies``.
    private func stampLine() {
        if line.last == 0x0D { line.removeLast() }
        if prefix.isEmpty { prefix = [0x5B] + ctimeNow() + [0x5D, 0x20] }
        replies += prefix
        replies += line
        replies.append(0x0A)
        line.removeAll(keepingCapacity: line.count <= 4096)
        requestDeadline = nil
    }

    /// Writes the replies of this chunk.
    private func send(on connection: EventConnection) {
        prefix.removeAll(keepingCapacity: true)
        guard !replies.isEmpty else { return }
        connection.write(replies)
        replies.removeAll(keepingCapacity: replies.count <= 64 * 1024)
    }
}
