import FamilyServer
import Glibc

/// A blocking client over the library's own sockets, with a receive timeout so that no test
/// can hang on a server that does not answer.
struct TestClient {
    let socket: Socket

    /// Connects a stream client to `address` (e.g. `tcp://127.0.0.1:PORT`, `unix:/path`).
    static func connect(_ address: String, timeout: Double = 10) throws -> TestClient {
        let target = try SocketAddress(parsing: address)
        let socket = try Socket(family: target.family, transport: target.transport)
        try socket.setTimeouts(receive: timeout, send: timeout)
        try socket.connect(to: target)
        return TestClient(socket: socket)
    }

    /// Sends bytes.
    func send(_ bytes: [UInt8]) throws { try socket.sendAll(bytes) }

    /// Sends a string's UTF-8 bytes.
    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Receives until `count` bytes arrived or the peer closed.
    func receive(count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while result.count < count {
            let n = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if n == 0 { break }
            result += buffer[0..<n]
        }
        return result
    }

    /// Receives one line up to and including LF (or what came before the peer closed).
    func receiveLine() throws -> String {
        var result: [UInt8] = []
        var byte = [UInt8](repeating: 0, count: 1)
        while true {
            let n = try byte.withUnsafeMutableBytes { try socket.receive(into: $0) }
            if n == 0 { break }
            result.append(byte[0])
            if byte[0] == 0x0A { break }
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// Receives everything until the peer closes.
    func receiveAll() throws -> [UInt8] { try receive(count: Int.max) }

    /// Closes the sending side (the server sees EOF) without closing the socket.
    func finishSending() throws { try socket.shutdown(Int32(SHUT_WR)) }

    /// Whether the server closed the connection (EOF or reset) within `timeout` seconds.
    func isClosedByServer(timeout: Double = 10) -> Bool {
        try? socket.setTimeouts(receive: timeout, send: timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            do {
                let n = try buffer.withUnsafeMutableBytes { try socket.receive(into: $0) }
                if n == 0 { return true }
            } catch {
                return (error as? SocketError)?.errno != EAGAIN
            }
        }
    }
}

/// One datagram round trip: sends `payload` from a fresh socket and waits for one reply.
func datagramRoundTrip(_ address: String, _ payload: [UInt8], bindPath: String? = nil, timeout: Double = 5) throws -> [UInt8]? {
    let target = try SocketAddress(parsing: address)
    let socket = try Socket(family: target.family, transport: .datagram)
    if let bindPath {
        try socket.bind(to: SocketAddress(.datagram, .unixPath(bindPath)))
    } else if target.isUnix {
        try socket.bind(to: SocketAddress(.datagram, .unnamed))  // autobind: an abstract name to reply to
    }
    try socket.setTimeouts(receive: timeout, send: timeout)
    try socket.sendDatagram(payload, to: target)
    do {
        return try socket.receiveDatagram(maxSize: 65536)?.bytes
    } catch where error.errno == EAGAIN {
        return nil
    }
}
