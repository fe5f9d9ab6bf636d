import FamilyServer
import Glibc

/// The base of every stream service: applies the listener's idle timeout to reads and writes,
/// buffers replies (flushed whenever the handler waits for the client), and ends quietly when the
/// client idles, resets or goes away — those end only this connection.
class ServiceStreamHandler: StreamRequestHandler {
    override var timeout: Double? {
        let idle = context.settings.idleTimeout
        return idle > 0 ? idle : nil
    }

    override var writeBufferSize: Int { 64 * 1024 }

    /// The service itself; throwing ends the connection.
    func serve() throws {}

    final override func handle() throws {
        do {
            try serve()
        } catch let error as SocketError {
            switch error.errno {
            case EAGAIN, EWOULDBLOCK:
                context.logger.info("\(context.configuration.text): closing connection from \(clientAddress) idle for \(context.settings.idleTimeout) s")
            case ECONNRESET, EPIPE, ENOTCONN, ESHUTDOWN:
                context.logger.debug("\(context.configuration.text): \(clientAddress) went away: \(error)")
            default:
                throw error
            }
        }
    }

    override func finish() throws {
        try super.finish()
        context.logger.debug("\(context.configuration.text): connection from \(clientAddress) closed")
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
    }
}

/// `[ctime] LINE\n` for each LF-terminated line (one CR before the LF dropped); the connection
/// stays open. A line longer than `max-line` bytes before its LF ends the connection.
final class StampHandler: ServiceStreamHandler {
    override func serve() throws {
        let maxLine = context.settings.maxLine
        while true {
            var line = try rfile.readline(limit: maxLine + 1)
            if line.isEmpty { return }
            if line.last == 0x0A {
                line.removeLast()
            } else if line.count > maxLine {
                context.logger.warning("\(context.configuration.text): closing connection from \(clientAddress): line longer than \(maxLine) bytes")
                return
            }
            if line.last == 0x0D { line.removeLast() }
            try wfile.write([0x5B] + ctimeNow() + [0x5D, 0x20] + line + [0x0A])
        }
    }
}
