import FamilyServer
import Glibc
import Logging

/// Opens the sockets of a declared listener: binds a new one, or adopts a duplicate of an inherited or `fd:N` one,
/// and builds its server with the processing model. Every failure is a ``DaemonError`` that names the listener and
/// the failing call, with the exit status SPEC section 3 gives it (``ExitStatus/cannotServe(errno:)``).
struct ListenerOpener {
    /// The processing model of stream listeners.
    let model: ModelName
    /// The forking model's pre-forked workers per stream listener.
    let prefork: Int
    /// The event model's reactors, which every stream listener shares; `nil` under the other models.
    let reactors: EventReactors?
    /// Where listeners log.
    let logger: Logger
    /// The sockets systemd passed.
    let inherited: InheritedSocketPool

    /// Opens listeners with the daemon's model; under the event model, starts its reactors (`workers`, by default one
    /// per CPU).
    init(settings: DaemonSettings, logger: Logger, inherited: InheritedSocketPool) throws(DaemonError) {
        self.model = settings.model
        self.prefork = settings.prefork
        self.logger = logger
        self.inherited = inherited
        guard settings.model == .event else {
            reactors = nil
            return
        }
        let count = settings.workers ?? EventReactors.processorCount
        do {
            reactors = try EventReactors(count: count, logger: logger)
        } catch {
            throw DaemonError(.osError, "model event: cannot start \(count) reactors: \(error)", errno: error.errno)
        }
    }

    /// Opens the listener's sockets: one, or for a bare `systemd` every unclaimed inherited socket.
    /// - Parameter reserved: The fd names that `systemd:NAME` listeners of the configuration claim.
    func open(_ declaration: ListenerDeclaration, reserved: Set<String>) throws(DaemonError) -> [Listener] {
        if let name = declaration.identity.handOverName, let passed = inherited.handedOver.take(name) {
            return [try takeOver(passed.socket, lockDescriptor: passed.lockDescriptor, declaration)]
        }
        switch declaration.identity.address {
        case .bind(let address):
            do {
                return [try listener(declaration, .bind(address))]
            } catch {
                throw Self.cannotServe(declaration, error)
            }
        case .descriptor(let fd):
            let socket: Socket
            do {
                socket = try InheritedSocketPool.duplicate(fd)
            } catch {
                throw DaemonError(.configuration, "\(declaration.subject): fd \(fd): \(error)")
            }
            return [try adopt(socket, inheritedAs: fd, declaration)]
        case .systemd(let name):
            let sockets: [(fd: Int32, socket: Socket)]
            do {
                sockets = try inherited.claim(name, reserved: reserved)
            } catch {
                throw DaemonError(.osError, "\(declaration.subject): \(error)", errno: error.errno)
            }
            guard !sockets.isEmpty else {
                let wanted = name.map { "named '\($0)'" } ?? "unclaimed"
                throw DaemonError(
                    .configuration, "\(declaration.subject): no inherited socket \(wanted) (\(inherited.summary))")
            }
            var listeners: [Listener] = []
            do throws(DaemonError) {
                for (fd, socket) in sockets { listeners.append(try adopt(socket, inheritedAs: fd, declaration)) }
            } catch {
                for listener in listeners { listener.stopListening() }
                throw error
            }
            return listeners
        }
    }

    /// Serves an adopted socket (a duplicate of the inherited descriptor `fd`), checking that it fits the service and
    /// the access rules. Closes it on failure.
    private func adopt(_ socket: Socket, inheritedAs fd: Int32, _ declaration: ListenerDeclaration) throws(DaemonError)
        -> Listener
    {
        let subject = "\(declaration.subject): fd \(fd)"
        do throws(DaemonError) {
            try ListenerPrecheck.checkService(declaration, transport: socket.transport, fd: fd)
            try declaration.checkAccessRules(for: socket.family == AF_UNIX ? .unix : .inet)
            if socket.transport == .stream && !socket.isListening {
                throw DaemonError(.configuration, "\(subject): stream socket is not listening")
            }
        } catch {
            socket.close()
            throw error
        }
        let name: String? = if case .systemd = declaration.identity.address {
            inherited.named.first { $0.fd == fd }?.name
        } else {
            nil
        }
        do {
            return try listener(declaration, .adopt(socket), inheritedName: name)
        } catch {
            socket.close()
            throw DaemonError(.configuration, "\(subject): \(error)")
        }
    }

    /// Serves a socket serverd bound before: passed down at a binary upgrade, or given back by systemd's fd store.
    /// For a socket it bound, the socket file (with `PATH.lock`, passed locked or locked anew) becomes this process's
    /// to remove; an `fd:N` socket stays one serverd never removes the file of. A Unix socket whose file cannot be
    /// taken over (gone since) is closed and its address bound anew. Closes what it was given on failure.
    private func takeOver(_ passed: InheritedSocket, lockDescriptor: Int32?, _ declaration: ListenerDeclaration)
        throws(DaemonError) -> Listener
    {
        guard case .bind(let address) = declaration.identity.address else {
            if let lockDescriptor { close(lockDescriptor) }
            return try adopt(passed.socket, inheritedAs: passed.fileDescriptor, declaration)
        }
        let subject = "\(declaration.subject): fd \(passed.fileDescriptor) (passed down)"
        var file: UnixSocketFile?
        if let path = passed.localAddress.path {
            do {
                file = try UnixSocketFile.adopt(passed.socket, path: path, lockDescriptor: lockDescriptor)
            } catch {
                if let lockDescriptor { close(lockDescriptor) }
                passed.socket.close()
                logger.warning("\(subject): cannot take the socket file over (\(error)); binding it anew")
                do {
                    return try listener(declaration, .bind(address))
                } catch {
                    throw Self.cannotServe(declaration, error)
                }
            }
        }
        do {
            return try listener(declaration, .takeOver(passed.socket, file))
        } catch {
            passed.socket.close()
            try? file?.remove()
            throw DaemonError(.configuration, "\(subject): \(error)")
        }
    }

    /// Where a listener's socket comes from.
    private enum Origin {
        case bind(SocketAddress)
        case adopt(Socket)
        /// A socket serverd bound before a binary upgrade, with its socket file.
        case takeOver(Socket, UnixSocketFile?)
    }

    /// The listener of a declaration on a socket it binds or adopts: a stream server with the processing model, or a
    /// datagram server.
    private func listener(_ declaration: ListenerDeclaration, _ origin: Origin, inheritedName: String? = nil) throws
        -> Listener
    {
        let context = ListenerContext(declaration, logger: logger, inheritedName: inheritedName)
        let server: any ServesListener
        switch origin {
        case .bind(let address) where address.transport == .stream:
            server = try ServiceStreamServer(context: context, binding: address, model: processingModel(context))
        case .bind(let address):
            server = try ServiceDatagramServer(context: context, binding: address)
        case .adopt(let socket), .takeOver(let socket, _):
            server = socket.transport == .stream
                ? try ServiceStreamServer(context: context, adopting: socket, model: processingModel(context))
                : try ServiceDatagramServer(context: context, adopting: socket)
        }
        let inherited = if case .adopt = origin { true } else { false }
        let takenOverFile: UnixSocketFile? = if case .takeOver(_, let file) = origin { file } else { nil }
        return Listener(
            identity: declaration.identity, context: context, server: server, inherited: inherited,
            servedByControlLoop: forks || startsProgramsOnControlLoop(server), takenOverFile: takenOverFile)
    }

    /// Whether an exec stream listener is served from the control loop rather than a thread of its own: its loop
    /// only accepts and starts programs, which the control loop reaps, so one thread does both without a wake-up of
    /// another per connection. Not under a model that runs requests on the serving thread (serial), where a reload
    /// that made the listener a built-in service would have the control loop serve connections itself.
    private func startsProgramsOnControlLoop(_ server: any ServesListener) -> Bool {
        server.socketType == .stream && server.context.policy.service == .exec
            && !server.processingModel.runsRequestsOnServingThread
    }

    /// Whether the stream model forks: then every listener is served from the daemon's one thread.
    private var forks: Bool { model == .forking }

    /// The processing model of a stream listener, limited to its policy's `max-connections`.
    private func processingModel(_ context: ListenerContext) -> any ProcessingModel {
        let policy = context.policy
        switch model {
        case .serial: return SerialModel()
        case .threading: return ThreadingModel(blockOnClose: false, maxThreads: policy.maxConnections)
        case .forking:
            return ForkingModel(
                maxChildren: policy.maxConnections, preforkedWorkers: prefork, blockOnClose: false,
                workerSetup: ForkedWorker.closeInheritedListeners)
        case .event:
            return EventModel(reactors: reactors!, capacity: policy.maxConnections, blockOnClose: false) { _ in
                ServiceEventHandler.make(for: context)
            }
        }
    }

    /// A failure to bind or listen, with SPEC's "cannot serve" status.
    static func cannotServe(_ declaration: ListenerDeclaration, _ error: any Error) -> DaemonError {
        guard let error = error as? SocketError else { return DaemonError(.osError, "\(declaration.subject): \(error)") }
        return DaemonError(ExitStatus.cannotServe(errno: error.errno), "\(declaration.subject): \(error)", errno: error.errno)
    }
}
