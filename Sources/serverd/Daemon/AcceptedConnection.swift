import FamilyServer
import Logging

/// `Accept=yes`: systemd passed one connected stream socket. It is served as that one connection
/// with the service of `--listen SERVICE@systemd` (default `stamp`), then serverd exits 0.
enum AcceptedConnection {
    static func serve(_ inherited: InheritedSocket, configuration: DaemonConfiguration) throws(DaemonError) -> Int32 {
        _ = try Log.bootstrap(level: configuration.logLevel, destination: LogDestination(for: configuration))
        let logger = Logger(label: "serverd")
        let listener = configuration.listeners.first { $0.address == "systemd" || $0.address.hasPrefix("systemd:") }
            ?? ListenerConfiguration(service: .stamp, address: "systemd", settings: ListenerSettings(), origin: "Accept=yes")
        let what = "fd \(inherited.fileDescriptor) (Accept=yes connection)"
        guard listener.service != .exec || !listener.settings.exec.isEmpty else {
            throw DaemonError(.configuration, "\(what): the exec service needs a program")
        }
        let context = ListenerContext(configuration: listener, logger: logger)
        let socket = inherited.socket
        do {
            let server = try ServiceStreamServer(context: context, adopting: socket, model: SerialModel())
            let client = inherited.peerAddress ?? SocketAddress(.stream, .unnamed)
            logger.notice("serving \(listener.service.rawValue) on \(what) from \(client)")
            server.serve(connection: socket, clientAddress: client)
        } catch {
            throw DaemonError(.osError, "\(what): \(error)")
        }
        return 0
    }
}
