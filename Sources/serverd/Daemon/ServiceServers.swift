import FamilyServer
import Glibc
import Logging
import Synchronization

/// The daemon's stream server: one listener's service over any family, behind its admission rules. The service and
/// the limits come from the listener's current policy, read anew for each connection.
///
/// Built-in services run in the processing model; `exec` connections do not: the serving thread starts their
/// program (``ExecLauncher``) whatever the model, and each child counts as a connection in flight until it is reaped
/// (the serial model runs one at a time).
///
/// `max-rate` paces accepting (``ListenerRate``): while its bucket is empty the socket is not watched. `max-rate-per-source`
/// paces each source once its connection is accepted and admitted: one past its source's rate is held
/// (``HeldConnections``) until its token is due, or refused (``Admission/pace(connection:from:policy:canHold:)``).
final class ServiceStreamServer: StreamServer, ServesListener, @unchecked Sendable {
    let context: ListenerContext
    private let admission: Admission
    private let rate = ListenerRate()
    private let held = HeldConnections()
    let heartbeat = Atomic<UInt64>(0)
    /// Starts the programs of exec connections.
    let exec: ExecLauncher
    let waitMode: WaitModeRunner

    /// Serves an adopted listening socket (inherited or `fd:N`).
    init(context: ListenerContext, adopting socket: Socket, model: any ProcessingModel) throws {
        self.context = context
        self.admission = Admission(context: context)
        self.exec = ExecLauncher(context: context)
        self.waitMode = WaitModeRunner(context: context)
        try super.init(adopting: socket, handler: ServiceStreamHandler.self, model: model, logger: context.logger)
    }

    /// Binds and listens on `address`, creating a Unix socket file with the listener's socket mode.
    init(context: ListenerContext, binding address: SocketAddress, model: any ProcessingModel) throws {
        self.context = context
        self.admission = Admission(context: context)
        self.exec = ExecLauncher(context: context)
        self.waitMode = WaitModeRunner(context: context)
        try super.init(
            address: address, handler: ServiceStreamHandler.self, model: model, logger: context.logger,
            bindAndActivate: false)
        socketMode = context.policy.socketMode.map { mode_t($0) }
        try bindAndActivate()
    }

    /// The handler class of a service.
    private static func handlerType(for service: ServiceName) -> BaseRequestHandler.Type {
        switch service {
        case .echo: return EchoHandler.self
        case .discard: return DiscardHandler.self
        case .daytime: return DaytimeHandler.self
        case .stamp: return StampHandler.self
        case .exec: return ExecHandler.self
        }
    }

    func apply(_ policy: ListenerPolicy) {
        processingModel.capacity = policy.maxConnections
        wake()
    }

    override func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool {
        guard let connection = request.connection else { return false }
        guard
            admission.admits(connection: connection, from: clientAddress, on: serverAddress, policy: context.current.policy)
        else { return false }
        context.logger.debug("\(context.label): connection from \(clientAddress)")
        return true
    }

    override func getRequest() throws -> (Request, SocketAddress)? {
        if handedToWaitModeProgram() { return nil }
        guard let request = try super.getRequest() else { return nil }
        rate.count(rate: context.maxRate, now: MonotonicClock.seconds())
        return request
    }

    override var requestsResumeAt: Double? {
        rate.resumesAt(rate: context.maxRate, now: MonotonicClock.seconds())
    }

    override var serviceActionsDueAt: Double? { held.nextDue }

    /// Serves an admitted connection now, holds it for its source's next token, or refuses it (`max-rate-per-source`).
    override func processRequest(_ request: Request, clientAddress: SocketAddress) throws {
        guard let connection = request.connection else { return }
        let current = context.current
        guard
            let wait = admission.pace(
                connection: connection, from: clientAddress, on: serverAddress, policy: current.policy,
                canHold: held.hasRoom)
        else {
            shutdownRequest(request)
            endRequest(request, clientAddress: clientAddress)
            return
        }
        guard wait <= 0 else {
            held.hold(request, client: clientAddress, due: MonotonicClock.seconds() + wait)
            return
        }
        try serve(request, clientAddress: clientAddress)
    }

    /// Serves held connections whose turn came, while there is capacity for them and the listener is open.
    private func serveHeldConnections() {
        while fileno >= 0, !isAtCapacity, let next = held.takeDue(now: MonotonicClock.seconds()) {
            do {
                try serve(next.request, clientAddress: next.client)
            } catch {
                handleError(next.request, clientAddress: next.client, error: error)
                shutdownRequest(next.request)
                endRequest(next.request, clientAddress: next.client)
            }
        }
    }

    /// Hands a connection to the processing model, or for `exec` starts its program; from here on it counts in the
    /// listener's total.
    private func serve(_ request: Request, clientAddress: SocketAddress) throws {
        context.counters.admitted()
        guard let connection = request.connection, context.current.policy.service == .exec else {
            return try super.processRequest(request, clientAddress: clientAddress)
        }
        let started = exec.launch(connection, client: clientAddress, listener: serverAddress) { [self] in
            endRequest(request, clientAddress: clientAddress)
            // The loop stopped watching the socket if this child kept the server at capacity.
            if processingModel.activeRequests + exec.childrenRunning + 1 >= execLimit { wake() }
        }
        if !started {
            shutdownRequest(request)
            endRequest(request, clientAddress: clientAddress)
        }
    }

    /// At the processing model's capacity, or with as many exec children as `max-connections` allows together with
    /// the model's requests (one at a time under the serial model).
    override var isAtCapacity: Bool {
        if super.isAtCapacity || waitMode.holdsSocket { return true }
        let children = exec.childrenRunning
        return children > 0 && processingModel.activeRequests + children >= execLimit
    }

    var connectionsInFlight: Int {
        processingModel.activeRequests + exec.childrenRunning + held.count + (waitMode.runningPID == nil ? 0 : 1)
    }

    /// Closes the listener and with it the connections still held for their turn.
    override func serverClose() {
        exec.stopStarting()
        super.serverClose()
        for next in held.takeAll() {
            shutdownRequest(next.request)
            endRequest(next.request, clientAddress: next.client)
        }
    }

    /// The most exec children and requests in flight together.
    private var execLimit: Int {
        processingModel.runsRequestsOnServingThread ? 1 : processingModel.capacity ?? Int.max
    }

    /// Runs the service's handler, then counts the connection's bytes and writes its connection line (in the
    /// process that served it: a forked worker under the forking model).
    override func finishRequest(_ request: Request, clientAddress: SocketAddress) throws {
        guard let connection = request.connection else { return }
        let handler = Self.handlerType(for: context.current.policy.service).init(
            request: request, clientAddress: clientAddress, server: self)
        let started = MonotonicClock.seconds()
        defer {
            if let served = handler as? ServiceStreamHandler {
                connectionEnded(served, connection: connection, duration: MonotonicClock.seconds() - started)
            }
        }
        try context.inFlight.serving(connection) {
            do {
                try handler.run()
            } catch {
                (handler as? ServiceStreamHandler)?.end = .error
                throw error
            }
        }
    }

    /// Counts a built-in service's connection and logs its connection line (exec connections are logged by the
    /// ``ExecLauncher``, refused ones by the ``Admission``).
    private func connectionEnded(_ handler: ServiceStreamHandler, connection: Socket, duration: Double) {
        let bytes = (received: handler.rfile?.receivedCount ?? 0, sent: handler.wfile?.sentCount ?? 0)
        context.counters.transferred(received: bytes.received, sent: bytes.sent)
        let policy = handler.policy
        guard context.logsConnections(policy) else { return }
        ConnectionRecord(
            listener: "\(policy.service.rawValue)@\(serverAddress)", service: policy.service,
            peer: .of(connection, client: handler.clientAddress),
            end: context.inFlight.wasCutShort ? .drain : handler.end, duration: duration, bytes: bytes
        ).log(to: context.logger)
    }

    override func requestEnded(_ request: Request, clientAddress: SocketAddress) {
        if let connection = request.connection { admission.ended(connection: connection) }
    }

    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        let client = clientAddress.map { " from \($0)" } ?? ""
        logger.error("\(context.label): connection\(client): \(error)")
    }

    override func serviceActions() {
        super.serviceActions()
        serveHeldConnections()
        heartbeat.store(UInt64(MonotonicClock.seconds() * 1e6), ordering: .relaxed)
    }
}

/// The daemon's datagram server: one listener's service on its serving thread (no thread or process per datagram),
/// behind its admission rules and, on UDP, the ``ReflectionGuard``, under every processing model alike.
///
/// Datagrams come in batches (``DatagramServer``: one `recvmmsg` for what is queued, up to its batch size), answered
/// where they lie (``answerInPlace(_:replies:)``), without a request or handler object per datagram: each goes
/// through the checks on its own, in the order they arrived (counters, ``ReflectionGuard``, ``Admission``), and the
/// built-in services answer from ``ServiceDatagramReply``; the replies of a batch
/// go out together by one `sendmmsg` once its last datagram was handled, and a reply refused or failed ends only its
/// own datagram.
///
/// `max-rate` paces reading (``ListenerRate``): a batch takes no more datagrams than the bucket holds tokens, and
/// while it is empty the socket is not read and datagrams wait in the receive buffer. A datagram past its source's
/// `max-rate-per-source` is dropped.
final class ServiceDatagramServer: DatagramServer, ServesListener, @unchecked Sendable {
    let context: ListenerContext
    private let admission: Admission
    private let rate = ListenerRate()
    /// The guard of the current reply rate, rebuilt when a reload changed the rate; only the serving thread uses it.
    private var reflectionGuard: ReflectionGuard
    /// The listener's policy for the batch being handled, read when it was received: its datagrams arrived together
    /// and are answered under one policy, without a lock for each. Only the serving thread uses it.
    private var current: ListenerContext.Snapshot
    let heartbeat = Atomic<UInt64>(0)
    /// The UDP port registered in ``OwnDatagramPorts`` while this listener serves.
    private var ownPort: UInt16?
    let waitMode: WaitModeRunner

    /// Serves an adopted datagram socket (inherited or `fd:N`).
    init(context: ListenerContext, adopting socket: Socket) throws {
        self.context = context
        self.admission = Admission(context: context)
        self.reflectionGuard = ReflectionGuard(replyRatePerSource: context.policy.replyRatePerSource)
        self.current = context.current
        self.waitMode = WaitModeRunner(context: context)
        // No handler runs: answerInPlace answers every batch (DatagramRequestHandler would do nothing).
        try super.init(adopting: socket, handler: DatagramRequestHandler.self, model: SerialModel(), logger: context.logger)
        registerOwnPort()
    }

    /// Binds `address`, creating a Unix socket file with the listener's socket mode.
    init(context: ListenerContext, binding address: SocketAddress) throws {
        self.context = context
        self.admission = Admission(context: context)
        self.reflectionGuard = ReflectionGuard(replyRatePerSource: context.policy.replyRatePerSource)
        self.current = context.current
        self.waitMode = WaitModeRunner(context: context)
        try super.init(
            address: address, handler: DatagramRequestHandler.self, model: SerialModel(), logger: context.logger,
            bindAndActivate: false)
        socketMode = context.policy.socketMode.map { mode_t($0) }
        try bindAndActivate()
        registerOwnPort()
    }

    /// Each batch reads the current policy (``getRequest()``); the loop is woken so that a
    /// changed `max-rate` applies at once, not at the next token of the old one.
    func apply(_ policy: ListenerPolicy) {
        wake()
    }

    private func registerOwnPort() {
        guard let port = serverAddress.port else { return }
        ownPort = port
        OwnDatagramPorts.add(port)
    }

    override func serverClose() {
        super.serverClose()
        if let port = ownPort {
            ownPort = nil
            OwnDatagramPorts.remove(port)
        }
    }

    /// Reads the listener's policy anew for the next batch, which ``answerInPlace(_:replies:)`` answers (in wait mode
    /// nothing is read: the program gets the socket).
    override func getRequest() throws -> (Request, SocketAddress)? {
        current = context.current
        if handedToWaitModeProgram(current) { return nil }
        return try super.getRequest()
    }

    override var requestsResumeAt: Double? {
        rate.resumesAt(rate: context.maxRate, now: MonotonicClock.seconds())
    }

    /// A batch takes no more datagrams than `max-rate`'s bucket holds tokens.
    override var requestAllowance: Int? {
        rate.allowance(rate: context.maxRate, now: MonotonicClock.seconds())
    }

    /// Answers a batch of datagrams where they lie: each passes the same checks as a request
    /// (``admits(from:size:credentials:)``), and its reply (echo: its payload, copied once into the reply batch) joins
    /// the batch's replies, a Unix sender's checked against its socket as every reply is
    /// (``DatagramReplyBatch/addReply(_:toDatagramFrom:credentials:on:)``).
    override func answerInPlace(_ batch: DatagramReceiveBatch, replies: DatagramReplyBatch) -> Bool {
        rate.count(batch.count, rate: current.policy.maxRate, now: MonotonicClock.seconds())
        var admitted = 0
        var receivedBytes = 0
        for index in 0..<batch.count {
            let sender = batch.sender(at: index, transport: .datagram)
            let credentials = batch.credentials(at: index)
            batch.withPayload(at: index) { payload in
                guard admits(from: sender, size: payload.count, credentials: credentials) else { return }
                admitted += 1
                receivedBytes += payload.count
                guard let reply = ServiceDatagramReply.of(current.policy.service, to: payload) else { return }
                do {
                    switch reply {
                    case .payload:
                        try replies.addReply(payload, toDatagramFrom: sender, credentials: credentials, on: socket)
                    case .bytes(let own):
                        _ = try own.withUnsafeBytes {
                            try replies.addReply($0, toDatagramFrom: sender, credentials: credentials, on: socket)
                        }
                    }
                } catch {
                    handleError(nil, clientAddress: sender, error: error)
                }
            }
        }
        metrics.requests.increment(by: admitted)
        metrics.refused.increment(by: batch.count - admitted)
        metrics.receivedBytes.increment(by: receivedBytes)
        return true
    }

    /// Counts a reply sent for the listener's status block (no connection line: a datagram flood must not flood the
    /// log).
    override func replySent(size: Int, to sender: SocketAddress) {
        super.replySent(size: size, to: sender)
        context.counters.replySent(size: size)
    }

    /// While a wait-mode program runs (or its starts are paused) the socket is not watched.
    override var isAtCapacity: Bool { super.isAtCapacity || waitMode.holdsSocket }

    var connectionsInFlight: Int { processingModel.activeRequests + (waitMode.runningPID == nil ? 0 : 1) }

    /// The checks every datagram passes, in the order it arrived: counted, then the ``ReflectionGuard`` (unless the
    /// service never answers), the address or credential rules and `max-rate-per-source`. Returns whether it is
    /// answered.
    private func admits(from sender: SocketAddress, size: Int, credentials: PeerCredentials?) -> Bool {
        context.counters.datagramReceived(size: size)
        // The snapshot's policy is read in place: a copy of it would retain each of its arrays, per datagram.
        let current = current
        let service = current.policy.service
        if (reflectionGuard.limiter?.rate ?? 0) != current.policy.replyRatePerSource {
            reflectionGuard = ReflectionGuard(replyRatePerSource: current.policy.replyRatePerSource)
        }
        if service != .discard,
            let refusal = reflectionGuard.refusal(
                for: sender, source: { SourceKey(peer: sender, settings: current.policy) })
        {
            let listener = "\(service.rawValue)@\(serverAddress)"
            reflectionGuard.record(refusal.rule, logger: logger, "\(listener): dropped a datagram from \(sender): \(refusal.reason)")
            context.counters.datagramDropped()
            return false
        }
        guard admission.admits(datagramFrom: sender, credentials: credentials, current: current),
            admission.admitsRate(datagramFrom: sender, credentials: credentials, current: current)
        else {
            context.counters.datagramDropped()
            return false
        }
        return true
    }

    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        if error is ReplyRefusal {
            super.handleError(request, clientAddress: clientAddress, error: error)
            return
        }
        let client = clientAddress.map { " from \($0)" } ?? ""
        logger.warning("\(context.label): datagram\(client): \(error)")
    }

    override func serviceActions() {
        super.serviceActions()
        heartbeat.store(UInt64(MonotonicClock.seconds() * 1e6), ordering: .relaxed)
    }
}
