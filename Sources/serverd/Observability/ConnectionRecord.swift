import FamilyServer
import Logging

/// One finished connection, as `--log-connections` logs it: one info line (or a structured journal entry) with the
/// listener, the service, the peer, the bytes in and out, the duration and how it ended.
///
/// In text (`--log-format text`), metadata sorted by key:
///
///     echo@tcp://127.0.0.1:7000: connection from 127.0.0.1:51234 ended: client-close bytes_in=6 bytes_out=6
///     duration=0.000812 end=client-close listener=echo@tcp://127.0.0.1:7000 remote_addr=127.0.0.1
///     remote_port=51234 service=echo
///
/// (one line). A Unix peer is its credentials (`peer_uid`, `peer_gid`, `peer_pid`); an exec connection has no byte
/// counts (its bytes pass between the client and the program, not through serverd) but an `exit_status` or
/// `signal`.
struct ConnectionRecord: Sendable {
    /// Who was connected.
    enum Peer: Sendable {
        /// An inet peer.
        case address(SocketAddress)
        /// A Unix peer's credentials (SO_PEERCRED), `nil` when they could not be read.
        case credentials(PeerCredentials?)

        /// The peer of `connection` from `client`: its address on inet, its credentials on Unix.
        static func of(_ connection: Socket, client: SocketAddress) -> Peer {
            client.ip != nil ? .address(client) : .credentials(try? connection.peerCredentials())
        }
    }

    /// The metadata keys of a connection line, which are also its JSON keys.
    enum Key {
        static let listener = "listener"
        static let service = "service"
        static let end = "end"
        static let remoteAddress = "remote_addr"
        static let remotePort = "remote_port"
        static let peerUID = "peer_uid"
        static let peerGID = "peer_gid"
        static let peerPID = "peer_pid"
        static let bytesIn = "bytes_in"
        static let bytesOut = "bytes_out"
        static let duration = "duration"
        static let exitStatus = "exit_status"
        static let signal = "signal"
    }

    /// The journal field of each key (`duration`, in seconds, becomes `DURATION_USEC` in µs); other keys go as
    /// `SERVERD_` and the key upper-cased.
    static let journalFieldNames: [String: String] = [
        Key.listener: "SERVERD_LISTENER", Key.service: "SERVERD_SERVICE", Key.end: "SERVERD_END",
        Key.remoteAddress: "REMOTE_ADDR", Key.remotePort: "REMOTE_PORT", Key.peerUID: "PEER_UID",
        Key.peerGID: "PEER_GID", Key.peerPID: "PEER_PID", Key.bytesIn: "BYTES_IN", Key.bytesOut: "BYTES_OUT",
        Key.exitStatus: "EXIT_STATUS", Key.signal: "SERVERD_SIGNAL",
    ]

    /// `SERVICE@ADDRESS` with the socket's real address, as the `listening on` line writes it (the port the kernel
    /// chose for port 0).
    var listener: String
    /// The service that served (or would have served) the connection.
    var service: ServiceName
    /// The peer.
    var peer: Peer
    /// How it ended.
    var end: ConnectionEnd
    /// Seconds from the start of serving to the end.
    var duration: Double
    /// Bytes received and sent; `nil` when serverd does not see them (exec).
    var bytes: (received: Int, sent: Int)?
    /// An exec program's exit status.
    var exitStatus: Int32?
    /// The signal that killed an exec program.
    var signal: Int32?

    /// Logs the line at info.
    func log(to logger: Logger) {
        logger.info("\(listener): connection from \(peerText) ended: \(end.rawValue)", metadata: metadata)
    }

    /// The peer for the message: `127.0.0.1:51234`, `[::1]:51234`, `uid 1000 gid 1000 pid 4242`.
    var peerText: String {
        switch peer {
        case .address(let address):
            guard let ip = address.ip else { return address.description }
            let host = ip.isIPv4 ? ip.description : "[\(ip)]"
            return "\(host):\(address.port ?? 0)"
        case .credentials(let credentials?):
            return "uid \(credentials.uid) gid \(credentials.gid) pid \(credentials.pid)"
        case .credentials(nil):
            return "an unknown Unix peer"
        }
    }

    /// The line's fields.
    var metadata: Logger.Metadata {
        var fields: Logger.Metadata = [
            Key.listener: .string(listener), Key.service: .string(service.rawValue), Key.end: .string(end.rawValue),
            Key.duration: .stringConvertible(LogNumber(microseconds: Int64((duration * 1e6).rounded()))),
        ]
        switch peer {
        case .address(let address):
            if let ip = address.ip { fields[Key.remoteAddress] = .string(ip.description) }
            if let port = address.port { fields[Key.remotePort] = .stringConvertible(Int(port)) }
        case .credentials(let credentials?):
            fields[Key.peerUID] = .stringConvertible(Int(credentials.uid))
            fields[Key.peerGID] = .stringConvertible(Int(credentials.gid))
            fields[Key.peerPID] = .stringConvertible(Int(credentials.pid))
        case .credentials(nil):
            break
        }
        if let bytes {
            fields[Key.bytesIn] = .stringConvertible(bytes.received)
            fields[Key.bytesOut] = .stringConvertible(bytes.sent)
        }
        if let exitStatus { fields[Key.exitStatus] = .stringConvertible(Int(exitStatus)) }
        if let signal { fields[Key.signal] = .stringConvertible(Int(signal)) }
        return fields
    }
}

/// A decimal number of seconds with microsecond precision, `0.000812`, written as a number in JSON.
struct LogNumber: CustomStringConvertible, Sendable {
    /// The text, digits and one point.
    let description: String

    /// The seconds of `microseconds`, six decimals.
    init(microseconds: Int64) {
        let value = max(0, microseconds)
        let fraction = String(value % 1_000_000)
        description = "\(value / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}

extension ConnectionRecord {
    /// Logs the line of an exec connection whose program ended with `status` (from waitpid; `nil` when it could not
    /// start) after `duration` seconds: ended `exit` with the exit status, `signal` with the signal, or `error`.
    func ended(status: Int32?, after duration: Double, logger: Logger) {
        var record = self
        record.duration = duration
        if let status {
            let signal = status & 0x7f
            if signal != 0 {
                record.end = .signal
                record.signal = signal
            } else {
                record.end = .exit
                record.exitStatus = (status >> 8) & 0xff
            }
        }
        record.log(to: logger)
    }
}
