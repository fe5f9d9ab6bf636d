import FamilyServer
import Glibc
import Logging

/// Turns configured listeners into serving ones: parses the address, binds a new socket or adopts
/// an inherited one, and picks the processing model. Every failure is a ``DaemonError`` that names
/// the listener and what failed, with the exit status SPEC section 3 gives it.
struct ListenerFactory {
    /// The processing model for stream listeners.
    var model: ModelName
    /// Where listeners log.
    var logger: Logger
    /// Sockets inherited from systemd, not yet claimed by a listener.
    var inherited: InheritedSocketPool
    /// The directory relative Unix socket paths are taken from: serverd's working directory at
    /// start, before `--daemon` moves to `/`.
    var baseDirectory: String

    /// Creates the listener for `configuration`.
    mutating func make(_ configuration: ListenerConfiguration) throws(DaemonError) -> [Listener] {
        let address: ListenAddress
        do {
            address = try ListenAddress(parsing: configuration.address)
        } catch {
            let status: ExitStatus = configuration.origin == "--listen" ? .usage : .configuration
            throw DaemonError(status, "\(configuration.origin) '\(configuration.text)': \(error)")
        }
        switch address {
        case .bind(var socketAddress):
            if let path = socketAddress.path, !path.hasPrefix("/") {
                socketAddress.endpoint = .unixPath(baseDirectory + "/" + path)
            }
            try checkTransport(socketAddress.transport, configuration)
            let context = ListenerContext(configuration: configuration, logger: logger)
            do {
                let server: BaseServer
                if socketAddress.transport == .stream {
                    server = try ServiceStreamServer(context: context, binding: socketAddress, model: processingModel(configuration))
                } else {
                    server = try ServiceDatagramServer(context: context, binding: socketAddress)
                }
                return [Listener(configuration: configuration, server: server, inherited: false, servedByControlLoop: model == .forking)]
            } catch {
                throw Self.cannotServe(configuration, error)
            }
        case .descriptor(let fd):
            let socket: Socket
            do {
                socket = try Socket(adopting: fd)
            } catch {
                throw DaemonError(.configuration, "\(configuration.origin) '\(configuration.text)': fd \(fd): \(error)")
            }
            return [try adopt(socket, configuration)]
        case .systemd(let name):
            let sockets = try inherited.claim(name: name, for: configuration)
            var listeners: [Listener] = []
            for socket in sockets { listeners.append(try adopt(socket, configuration)) }
            return listeners
        }
    }

    /// Serves an adopted socket, checking that it fits the service.
    func adopt(_ socket: Socket, _ configuration: ListenerConfiguration) throws(DaemonError) -> Listener {
        let what = "\(configuration.origin) '\(configuration.text)': fd \(socket.fileDescriptor)"
        try checkTransport(socket.transport, configuration, descriptor: socket.fileDescriptor)
        try configuration.checkAccessRules(for: socket.family == AF_UNIX ? .unix : .inet)
        if socket.transport == .stream && !socket.isListening {
            throw DaemonError(.configuration, "\(what): stream socket is not listening")
        }
        let context = ListenerContext(configuration: configuration, logger: logger)
        do {
            let server: BaseServer
            if socket.transport == .stream {
                server = try ServiceStreamServer(context: context, adopting: socket, model: processingModel(configuration))
            } else {
                server = try ServiceDatagramServer(context: context, adopting: socket)
            }
            return Listener(configuration: configuration, server: server, inherited: true, servedByControlLoop: model == .forking)
        } catch {
            throw DaemonError(.configuration, "\(what): \(error)")
        }
    }

    private func checkTransport(
        _ transport: SocketAddress.Transport, _ configuration: ListenerConfiguration, descriptor: Int32? = nil
    ) throws(DaemonError) {
        guard configuration.service == .exec, transport == .datagram else { return }
        let on = descriptor.map { ": fd \($0) is a datagram socket" } ?? ""
        throw DaemonError(.configuration, "\(configuration.origin) '\(configuration.text)'\(on): the exec service needs a stream socket")
    }

    private func processingModel(_ configuration: ListenerConfiguration) -> ProcessingModel {
        let limit = configuration.settings.maxConnections
        switch model {
        case .serial: return SerialModel()
        case .threading: return ThreadingModel(blockOnClose: false, maxThreads: limit)
        case .forking: return ForkingModel(maxChildren: limit, blockOnClose: false)
        }
    }

    /// Maps a failure to bind or listen to SPEC's "cannot serve" statuses.
    static func cannotServe(_ configuration: ListenerConfiguration, _ error: any Error) -> DaemonError {
        let what = "\(configuration.origin) '\(configuration.text)'"
        guard let error = error as? SocketError else { return DaemonError(.osError, "\(what): \(error)") }
        let status: ExitStatus
        switch error.errno {
        case EADDRINUSE: status = .unavailable
        case EACCES, EPERM: status = .noPermission
        default: status = .osError
        }
        return DaemonError(status, "\(what): \(error)", errno: error.errno)
    }
}
