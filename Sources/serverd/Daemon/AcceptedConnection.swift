import FamilyServer
import Logging

/// `Accept=yes`: systemd passed one connected stream socket. It is served as that one connection
/// with the service of `--listen SERVICE@systemd` (default `stamp`), then serverd exits 0.
enum AcceptedConnection {
    /// What serves the connection when the configuration declares no `systemd` listener.
    private static let defaultSpec = "stamp@systemd"

    /// Serves the connection with the first `systemd` or `systemd:NAME` listener the configuration declares, else
    /// with `stamp` and the configuration's top-level options, whatever other listeners it declares.
    static func serve(_ inherited: InheritedSocket, invocation: Invocation) throws(DaemonError) -> Int32 {
        var desired = try DesiredState.build(invocation) { _ throws(DaemonError) in [] }
        if systemdListener(of: desired) == nil {
            var withDefault = invocation
            withDefault.listen.append(defaultSpec)
            desired = try DesiredState.build(withDefault) { _ throws(DaemonError) in [] }
        }
        let settings = desired.settings
        _ = try Log.bootstrap(
            level: settings.logLevel, destination: settings.logDestination, format: settings.logFormat)
        let logger = Logger(label: "serverd")
        let what = "fd \(inherited.fileDescriptor) (Accept=yes connection)"
        guard let declaration = systemdListener(of: desired) else {
            throw DaemonError(.configuration, "\(what): no --listen SERVICE@systemd listener to serve it")
        }
        let context = ListenerContext(declaration, logger: logger)
        let socket = inherited.socket
        do {
            let server = try ServiceStreamServer(context: context, adopting: socket, model: SerialModel())
            let client = inherited.peerAddress ?? SocketAddress(.stream, .unnamed)
            logger.notice("serving \(declaration.policy.service.rawValue) on \(what) from \(client)")
            server.serve(connection: socket, clientAddress: client)
        } catch {
            throw DaemonError(.osError, "\(what): \(error)")
        }
        return 0
    }

    /// The first `systemd` or `systemd:NAME` listener declared.
    private static func systemdListener(of desired: DesiredState) -> ListenerDeclaration? {
        desired.listeners.first {
            if case .systemd = $0.identity.address { return true }
            return false
        }
    }
}
