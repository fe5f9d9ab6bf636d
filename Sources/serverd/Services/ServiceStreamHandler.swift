import FamilyServer
import Glibc

/// The base of every stream service: applies the listener's idle timeout to reads and writes and
/// its `min-rate` to reads, buffers replies (flushed whenever the handler waits for the client),
/// and ends quietly when the client idles, is too slow, resets or goes away — those end only this
/// connection. Each cut for time is logged with its reason, the listener and the peer, and every way of ending is
/// kept in ``end`` for the connection line (``ConnectionRecord``).
class ServiceStreamHandler: StreamRequestHandler {
    /// The listener's policy when this connection started: a reload meanwhile applies to later connections.
    lazy var policy = context.policy
    /// How the connection ended, once the handler has run: the client's close unless something else ended it.
    var end = ConnectionEnd.clientClose

    override var timeout: Double? {
        let idle = policy.idleTimeout
        return idle > .zero ? idle.seconds : nil
    }

    override var writeBufferSize: Int { 64 * 1024 }

    /// The grace period of `min-rate` when `request-timeout` is 0.
    static let defaultRateGrace = Duration.seconds(60)

    override func setup() throws {
        try super.setup()
        if policy.minRate > 0 {
            let grace = policy.requestTimeout > .zero ? policy.requestTimeout : Self.defaultRateGrace
            rfile.minimumRate = MinimumRate(
                bytesPerSecond: Double(policy.minRate), start: MonotonicClock.seconds(), grace: grace.seconds)
        }
    }

    /// The service itself; throwing ends the connection.
    func serve() throws {}

    final override func handle() throws {
        let label = context.label
        do {
            try serve()
        } catch let error as ReadDeadlineError {
            switch error.reason {
            case .deadline:
                end = .deadline
                context.logger.notice("\(label): closing connection from \(clientAddress): request not complete within request-timeout \(ValueSyntax.display(policy.requestTimeout.seconds)) s")
            case .minimumRate:
                end = .minRate
                context.logger.notice("\(label): closing connection from \(clientAddress): too slow, below min-rate \(policy.minRate) bytes/s")
            }
        } catch let error as SocketError {
            switch error.errno {
            case EAGAIN, EWOULDBLOCK:
                end = .idle
                context.logger.info("\(label): closing connection from \(clientAddress): idle for idle-timeout \(ValueSyntax.display(policy.idleTimeout.seconds)) s")
            case ECONNRESET, EPIPE, ENOTCONN, ESHUTDOWN:
                end = .reset
                context.logger.debug("\(context.label): \(clientAddress) went away: \(error)")
            default:
                end = .error
                throw error
            }
        }
    }

    override func finish() throws {
        try super.finish()
        context.logger.debug("\(context.label): connection from \(clientAddress) closed")
    }
}

/// RFC 862: every byte back until the client closes.
final class EchoHandler: ServiceStreamHandler {
    override func serve() throws {
        while true {
            let chunk = try rfile.readAvailable()
            if chunk.isEmpty { return }
            try wfile.write(chunk)
        }
    }
}

/// RFC 863: read and drop.
final class DiscardHandler: ServiceStreamHandler {
    override func serve() throws {
        while try !rfile.readAvailable().isEmpty {}
    }
}

/// RFC 867: one `ctime` line, CRLF-terminated, then close.
final class DaytimeHandler: ServiceStreamHandler {
    override func serve() throws {
        try wfile.write(ctimeNow() + [0x0D, 0x0A])
        end = .done
    }
}

/// `[ctime] LINE\n` for each LF-terminated line (one CR before the LF dropped); the connection
/// stays open. A line longer than `max-line` bytes before its LF ends the connection, and so does
/// one whose LF has not arrived `request-timeout` seconds after its first byte.
final class StampHandler: ServiceStreamHandler {
    override func serve() throws {
        let maxLine = policy.maxLine
        let requestTimeout = policy.requestTimeout.seconds
        while true {
            // Between lines only the idle timeout (and min-rate) applies; the line's clock starts
            // with its first byte.
            rfile.deadline = nil
            guard try rfile.waitForData() else { return }
            if requestTimeout > 0 { rfile.deadline = MonotonicClock.seconds() + requestTimeout }
            var line = try rfile.readline(limit: maxLine + 1)
            if line.isEmpty { return }
            if line.last == 0x0A {
                line.removeLast()
            } else if line.count > maxLine {
                end = .maxLine
                context.logger.warning("\(context.label): closing connection from \(clientAddress): line longer than \(maxLine) bytes")
                return
            }
            if line.last == 0x0D { line.removeLast() }
            try wfile.write([0x5B] + ctimeNow() + [0x5D, 0x20] + line + [0x0A])
        }
    }
}
