import CoreMetrics
import Glibc
import Logging
import Synchronization

/// The template every server follows: Python's `socketserver.BaseServer` and `TCPServer` in one,
/// for any address family.
///
/// A server owns one socket. ``serveForever(pollInterval:)`` waits for requests and hands each to
/// the ``processingModel`` (serial, threading or forking), which runs a fresh instance of
/// ``handlerType`` for it. Every step is a small overridable method:
///
///     init → serverBind() → serverActivate()
///     serveForever (or startServing) / handleRequest
///         → getRequest() → verifyRequest() → processRequest()
///             → (in the model's worker) finishRequest() → handler setup/handle/finish
///             → shutdownRequest() → closeRequest()
///         → serviceActions()
///     shutdown() from any thread; serverClose() when done
///
/// Unlike Python's: ``shutdown(wait:)`` wakes the loop at once and is safe from inside a handler;
/// ``serverClose()`` is idempotent, reaps the model's workers and removes a Unix socket file the
/// server created; a failed bind leaks no descriptor.
///
/// Subclasses ``StreamServer`` and ``DatagramServer`` supply ``getRequest()`` and
/// ``serverActivate()`` for their socket type.
///
/// Thread safety: configure the server (``timeout``, ``allowReuseAddress``, …) before it serves;
/// ``shutdown(wait:)``, ``serverClose()`` and ``wake()`` may be called from any thread.
open class BaseServer: @unchecked Sendable {
    // @unchecked: the configuration properties are set before serving and only read afterwards;
    // the state shared between threads sits in Atomics and a ConditionLock.

    /// The server socket.
    public let socket: Socket
    /// The address the socket is bound to (for port 0, the port the kernel chose).
    public var serverAddress: SocketAddress
    /// The handler class instantiated for every request.
    public let handlerType: BaseRequestHandler.Type
    /// How requests are run: serially, on threads or in child processes.
    public let processingModel: any ProcessingModel
    /// Where errors and notable events go.
    public var logger: Logger

    /// Seconds ``handleRequest()`` waits before calling ``handleTimeout()``; `nil` waits forever.
    public var timeout: Double?
    /// Set SO_REUSEADDR before binding a TCP socket (on by default, so a restarted server can
    /// bind at once while old connections linger in TIME_WAIT; Linux still refuses two live
    /// listeners). Never set on a UDP socket: there Linux lets every socket that sets it share the
    /// port, so a second server would bind silently instead of failing with EADDRINUSE.
    public var allowReuseAddress = true
    /// Set SO_REUSEPORT before binding; inet only (Linux rejects it on Unix sockets).
    public var allowReusePort = false
    /// The `listen` backlog.
    public var requestQueueSize = Int32(SOMAXCONN)
    /// Permission bits for a filesystem Unix socket the server creates, exactly (whatever the
    /// umask) from the moment the file appears; `nil` leaves them to the umask.
    public var socketMode: mode_t?
    /// Set when someone more privileged removes the socket file later (a daemon that dropped
    /// its privileges, with a privileged helper that cleans up at exit): ``serverClose()`` still
    /// tries to remove it, but a permission error is then expected and not logged.
    public var socketFileRemovalDelegated = false
    /// The swift-metrics backend of ``metrics``: the bootstrapped one (`MetricsSystem.factory`) unless set before the
    /// server serves.
    public var metricsFactory: any MetricsFactory = MetricsSystem.factory

    private let wakeup: WakeupEvent
    private let shutdownRequested = Atomic<Bool>(false)
    private let loop = ConditionLock(LoopState())
    private let closed = Atomic<Bool>(false)
    private let socketFile = ConditionLock<UnixSocketFile?>(nil)
    private let acceptPausedUntil = ConditionLock<Double>(0)
    /// Accept pauses, logged once, then at most every 10 s.
    private let acceptPauses = ThrottledWarning()
    /// ``metrics`` once created: a retained `ServerMetrics`, set once and released by `deinit`. (Not an
    /// `AtomicLazyReference`: its generic `load` looks up type metadata on every call.)
    private let reportedMetrics = Atomic<UnsafeRawPointer?>(nil)

    private struct LoopState: Sendable {
        var serving = false
        var thread: pthread_t?
    }

    /// The server socket's descriptor, -1 once closed (Python's `fileno()`).
    public var fileno: Int32 { socket.fileDescriptor }
    /// `AF_INET`, `AF_INET6` or `AF_UNIX`.
    public var addressFamily: Int32 { socket.family }
    /// Stream or datagram.
    public var socketType: SocketAddress.Transport { socket.transport }

    /// Creates a server for `address`, and unless `bindAndActivate` is false, binds and activates it.
    ///
    /// With `bindAndActivate: false` the socket exists but is not bound: set options, then call
    /// ``serverBind()`` and ``serverActivate()`` yourself. If binding or activating fails the
    /// socket is closed before the error is thrown.
    public init(
        address: SocketAddress, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer"), bindAndActivate: Bool = true
    ) throws {
        socket = try Socket(family: address.family, transport: address.transport)
        serverAddress = address
        handlerType = handler
        processingModel = model
        self.logger = logger
        do {
            wakeup = try WakeupEvent()
            try socket.setNonBlocking(true)
        } catch {
            socket.close()
            throw error
        }
        if bindAndActivate {
            try self.bindAndActivate()
        }
    }

    /// Adopts a socket that is already bound (and, for a stream server, listening): one inherited
    /// from systemd or passed as `fd:N`. Binding and activation are skipped; the server never
    /// removes the socket's file.
    public init(
        adopting socket: Socket, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer")
    ) throws {
        self.socket = socket
        handlerType = handler
        processingModel = model
        self.logger = logger
        serverAddress = try socket.localAddress()
        wakeup = try WakeupEvent()
        try socket.setNonBlocking(true)
    }

    deinit {
        if let stored = reportedMetrics.load(ordering: .acquiring) {
            Unmanaged<ServerMetrics>.fromOpaque(stored).release()
        }
    }

    // MARK: - Setting up

    /// Binds the socket to ``serverAddress`` and stores the real address back (the port the kernel
    /// chose for port 0). Sets SO_REUSEADDR/SO_REUSEPORT as configured, makes `[::]` dual-stack.
    /// For a filesystem Unix socket: takes the lock file beside it (`PATH.lock`, held until
    /// ``serverClose()``), replaces a stale socket file and creates the file with ``socketMode``
    /// (see ``UnixSocketFile``). May be overridden, for example to set more socket options before
    /// calling `super`.
    open func serverBind() throws {
        let address = serverAddress
        if let ip = address.ip {
            if allowReuseAddress && address.transport == .stream {
                try socket.setOption(level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, label: "SO_REUSEADDR")
            }
            if allowReusePort {
                try socket.setOption(level: SOL_SOCKET, name: SO_REUSEPORT, value: 1, label: "SO_REUSEPORT")
            }
            if !ip.isIPv4 && ip.isWildcard {
                try socket.setOption(level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 0, label: "IPV6_V6ONLY")
            }
        }
        if let path = address.path {
            let file = try UnixSocketFile.bind(socket, at: address, path: path, mode: socketMode)
            socketFile.withLock { $0 = file }
        } else {
            try socket.bind(to: address)
            serverAddress = try socket.localAddress()
        }
    }

    /// The Unix socket file this server created and will remove on close (with its lock file);
    /// `nil` for any other socket, for an adopted one and once closed.
    public var createdSocketFile: UnixSocketFile? { socketFile.withLock { $0 } }

    /// Makes this server the owner of the socket file of its adopted socket (taken over from the process that bound
    /// it, see ``UnixSocketFile/adopt(_:path:lockDescriptor:)``): ``serverClose()`` then removes it.
    public func takeOwnership(of file: UnixSocketFile) {
        socketFile.withLock { $0 = file }
    }

    /// Leaves the socket file this server created in place at ``serverClose()``, for another process that serves
    /// the same socket now (a binary upgrade): the file and its lock file are relinquished, not removed.
    public func leaveSocketFile() {
        let file = socketFile.withLock { file in
            defer { file = nil }
            return file
        }
        file?.relinquish()
    }

    /// Makes the bound socket ready for requests (`listen` for a stream server). May be overridden.
    open func serverActivate() throws {}

    /// Calls ``serverBind()`` then ``serverActivate()``; if either fails, closes the server (no
    /// descriptor or socket file is left behind) and rethrows. For a server created with
    /// `bindAndActivate: false` once its options are set.
    public func bindAndActivate() throws {
        do {
            try serverBind()
            try serverActivate()
        } catch {
            serverClose()
            throw error
        }
    }

    // MARK: - Serving

    /// Handles requests until ``shutdown(wait:)`` is called.
    ///
    /// The loop sleeps in `poll` on the socket and a wake-up descriptor, so ``shutdown(wait:)`` stops it
    /// at once; `pollInterval` only sets how often ``serviceActions()`` runs while idle. While the
    /// processing model is at its capacity, no new request is taken: clients wait in the backlog.
    /// Neither is one taken before ``requestsResumeAt``; the loop wakes by then, and by
    /// ``serviceActionsDueAt``. A processing model may run the loop itself
    /// (``ProcessingModel/runServeLoop(of:pollInterval:)``: the event model runs it on a reactor); this
    /// thread then waits until it stops.
    open func serveForever(pollInterval: Double = 0.5) {
        loop.withLock(notify: .all) {
            $0.serving = true
            $0.thread = pthread_self()
        }
        defer { loopStopped() }
        if processingModel.runServeLoop(of: self, pollInterval: pollInterval) { return }
        while !shutdownRequested.load(ordering: .acquiring) {
            let accepting = isAccepting
            var descriptors = [wakeup.fileDescriptor]
            if accepting { descriptors.append(socket.fileDescriptor) }
            // A worker that ends wakes the loop, but a forked one that crashed cannot: look again soon.
            var interval = needsPolling ? min(pollInterval, 0.05) : pollInterval
            if let due = nextWakeup { interval = min(interval, max(0, due - MonotonicClock.seconds())) }
            // Requests taken off the socket already are served without waiting for it.
            let holding = accepting && hasReceivedRequests
            if holding { interval = 0 }
            let ready: [Bool]
            do {
                ready = try Poll.readable(descriptors, timeout: interval)
            } catch {
                handleError(nil, clientAddress: nil, error: error)
                continue
            }
            if ready[0] { wakeup.drain() }
            if shutdownRequested.load(ordering: .acquiring) { break }
            if accepting && (ready[1] || holding) { takeQueuedRequests() }
            serviceActions()
        }
    }

    /// Starts serving and returns at once, when the processing model runs the serve loop on threads of its own (the
    /// event model runs it on a reactor): no thread of the caller's waits for it. `ended` runs, on the thread that
    /// ended the loop, once ``shutdown(wait:)`` stopped it, as ``serveForever(pollInterval:)`` would then return;
    /// ``shutdown(wait:)`` returns once `ended` has, as it waits for `serveForever`.
    ///
    /// Returns `false`, having started nothing, when the model has no loop of its own (serial, threading, forking):
    /// run ``serveForever(pollInterval:)`` on a thread instead.
    public func startServing(pollInterval: Double = 0.5, ended: @escaping @Sendable () -> Void) -> Bool {
        loop.withLock(notify: .all) {
            $0.serving = true
            $0.thread = nil
        }
        let started = processingModel.startServeLoop(of: self, pollInterval: pollInterval) { [self] in
            ended()
            loopStopped()
        }
        if !started { loop.withLock(notify: .all) { $0.serving = false } }
        return started
    }

    /// The serve loop has stopped: a later ``shutdown(wait:)`` applies to the next loop, and waiters are released.
    private func loopStopped() {
        shutdownRequested.store(false, ordering: .releasing)
        loop.withLock(notify: .all) {
            $0.serving = false
            $0.thread = nil
        }
    }

    // MARK: - Serving from a loop of the caller's

    /// Whether ``shutdown(wait:)`` asked the loop to stop (for a model that runs the loop itself).
    var isShutdownRequested: Bool { shutdownRequested.load(ordering: .acquiring) }

    /// Records that the loop now runs on `thread` (a reactor), so that a handler there calling
    /// ``shutdown(wait:)`` does not wait for its own loop.
    func loopMoved(to thread: pthread_t) {
        loop.withLock { $0.thread = thread }
    }

    /// What a caller's own poll loop (one thread serving several servers) should wait on for
    /// this server: the wake-up descriptor, and the socket unless the processing model is at
    /// capacity, accepting is paused or the server paces its requests (``requestsResumeAt``).
    /// That loop waits no longer than until ``nextWakeup``, and no longer than a moment while
    /// ``needsPolling`` says so.
    public var readinessDescriptors: [Int32] {
        isAccepting ? [wakeup.fileDescriptor, socket.fileDescriptor] : [wakeup.fileDescriptor]
    }

    /// Whether a poll loop serving this server must look again soon although no descriptor will
    /// wake it: while the processing model is at capacity (a forked worker that crashed wakes
    /// nobody) or accepting is paused after a failure.
    public var needsPolling: Bool {
        isAtCapacity || hasReceivedRequests || acceptPausedUntil.withLock { $0 } > MonotonicClock.seconds()
    }

    /// The monotonic time (``MonotonicClock/seconds()``) by which the serve loop must pass again,
    /// whether or not a descriptor wakes it: the earlier of ``requestsResumeAt`` and
    /// ``serviceActionsDueAt``; `nil` when neither is set.
    public var nextWakeup: Double? {
        [requestsResumeAt, serviceActionsDueAt].compactMap { $0 }.min()
    }

    /// For a caller's own poll loop, once one of ``readinessDescriptors`` is readable: takes and
    /// serves what is queued on the socket, a bounded batch. Follow it with ``serviceActions()``
    /// on every pass of that loop, as ``serveForever(pollInterval:)`` does.
    public func serveReadyRequests() {
        wakeup.drain()
        if isAccepting { takeQueuedRequests() }
    }

    /// Takes what is queued on the socket, a bounded batch per wake-up (and whatever the server
    /// received already, ``hasReceivedRequests``), then calls ``requestsTaken()``.
    ///
    /// Requests received already were taken within the server's allowance and the model's capacity
    /// (``requestAllowance``): they are served without asking ``isAccepting`` again for each.
    private func takeQueuedRequests() {
        var taken = 0
        while taken < 64 || hasReceivedRequests, hasReceivedRequests || isAccepting,
            !shutdownRequested.load(ordering: .relaxed), handleRequestNoBlock()
        {
            taken += 1
        }
        requestsTaken()
    }

    /// Handles one request, waiting up to ``timeout`` for it; calls ``handleTimeout()`` if none came.
    /// Returns early, handling nothing, if ``shutdown(wait:)`` is called meanwhile.
    open func handleRequest() {
        let deadline = timeout.map { MonotonicClock.seconds() + $0 }
        while true {
            let left = hasReceivedRequests ? 0 : deadline.map { max(0, $0 - MonotonicClock.seconds()) }
            let ready: [Bool]
            do {
                ready = try Poll.readable([wakeup.fileDescriptor, socket.fileDescriptor], timeout: left)
            } catch {
                handleError(nil, clientAddress: nil, error: error)
                return
            }
            if ready[0] {
                wakeup.drain()
                if shutdownRequested.load(ordering: .acquiring) { return }
            }
            if ready[1] || hasReceivedRequests {
                let handled = handleRequestNoBlock()
                requestsTaken()
                if handled { return }
                continue
            }
            if let deadline, MonotonicClock.seconds() >= deadline {
                handleTimeout()
                return
            }
        }
    }

    /// Stops ``serveForever(pollInterval:)`` and waits until it has returned.
    ///
    /// Safe from any thread: from a handler running on the serving thread itself it returns at
    /// once and the loop ends after that request. Called while nothing serves, it makes the next
    /// ``serveForever(pollInterval:)`` return at once. It neither closes the socket nor waits
    /// for running requests; ``serverClose()`` does that. Called in a forked worker it returns at
    /// once but cannot stop the parent's loop, which runs in another process.
    ///
    /// - Parameter wait: `false` only asks the loop to stop and returns at once (a daemon's
    ///   signal handling thread must not wait for a serial server's running request).
    public func shutdown(wait: Bool = true) {
        shutdownRequested.store(true, ordering: .releasing)
        wakeup.signal()
        guard wait else { return }
        let me = pthread_self()
        loop.wait(until: { state in
            guard state.serving else { return true }
            // A loop started by startServing has no thread until its reactor takes it.
            guard let thread = state.thread else { return false }
            return pthread_equal(thread, me) != 0
        }) { _, _ in }
    }

    /// Wakes the serve loop without stopping it, e.g. when a worker finished and capacity freed.
    /// Async-signal-safe; works from a forked child too (the eventfd is shared).
    public func wake() {
        wakeup.signal()
    }

    /// Closes the server socket, removes the Unix socket file the server created (never one it
    /// adopted; only while it is still the same socket), then its lock file, and lets the
    /// processing model reap or wait for its workers. Idempotent.
    open func serverClose() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        socket.close()
        let file = socketFile.withLock { file in
            defer { file = nil }
            return file
        }
        do {
            try file?.remove()
        } catch {
            let expected = socketFileRemovalDelegated && (error.errno == EACCES || error.errno == EPERM)
            logger.log(level: expected ? .debug : .warning, "\(serverAddress): cannot remove the socket file: \(error)")
        }
        processingModel.close(server: self)
    }

    /// Runs `body` with the server and closes it afterwards, however `body` ends: the equivalent of
    /// Python's `with TCPServer(...) as server:`.
    public func closing<R>(_ body: (BaseServer) throws -> R) rethrows -> R {
        defer { serverClose() }
        return try body(self)
    }

    // MARK: - Steps of one request

    /// Takes the next request from the socket, or returns `nil` when none is ready. Overridden by
    /// ``StreamServer`` (accept) and ``DatagramServer`` (recvfrom).
    open func getRequest() throws -> (Request, SocketAddress)? {
        preconditionFailure("\(type(of: self)) must override getRequest()")
    }

    /// Whether to serve this request; `false` closes it unserved. May be overridden (access control).
    open func verifyRequest(_ request: Request, clientAddress: SocketAddress) -> Bool { true }

    /// Hands the request to the processing model. May be overridden.
    open func processRequest(_ request: Request, clientAddress: SocketAddress) throws {
        try processingModel.process(request, clientAddress: clientAddress, server: self)
    }

    /// Runs the request handler for one request. May be overridden.
    open func finishRequest(_ request: Request, clientAddress: SocketAddress) throws {
        try handlerType.init(request: request, clientAddress: clientAddress, server: self).run()
    }

    /// Ends a request after it was served: shuts down the sending side of a connection (so the
    /// client sees EOF even if a forked child still holds a copy), then ``closeRequest(_:)``.
    open func shutdownRequest(_ request: Request) {
        if let connection = request.connection {
            try? connection.shutdown(Int32(SHUT_WR))
        }
        closeRequest(request)
    }

    /// Releases a request's resources: closes a connection; a datagram needs nothing.
    open func closeRequest(_ request: Request) {
        request.connection?.close()
    }

    /// Reports an error raised while handling a request (or, with `nil` request, by the loop itself).
    /// The default logs it at error level. May be overridden.
    open func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        let client = clientAddress.map { " from \($0)" } ?? ""
        logger.error("\(serverAddress): error handling request\(client): \(error)")
    }

    /// Called when ``handleRequest()`` waited ``timeout`` seconds for nothing. Does nothing by default.
    open func handleTimeout() {}

    /// Called once the serve loop took what one wake-up brought (``handleRequest()``: its one
    /// request), after the last of those requests was processed: a server that leaves part of each
    /// request's work to do for all of them together does it here (a ``DatagramServer`` sends the
    /// replies of its batch). Does nothing by default; overriders should call `super`.
    open func requestsTaken() {}

    /// Whether the server holds requests it took off its socket already and hands out from
    /// ``getRequest()`` before it reads the socket again (a ``DatagramServer``'s received batch):
    /// the serve loop then serves them without waiting for the socket. `false` by default.
    open var hasReceivedRequests: Bool { false }

    /// How many requests the server may take now before its own pacing (``requestsResumeAt``)
    /// stops it; `nil` (the default) for no limit. A server that takes several requests off its
    /// socket at once (a ``DatagramServer``'s batch) takes no more than this.
    open var requestAllowance: Int? { nil }

    /// Called once per pass of the serve loop. Reaps finished workers of the processing model;
    /// overriders should call `super`.
    open func serviceActions() {
        processingModel.collect(server: self)
    }

    /// Called in the serving process once a request is over and its worker is gone: right after
    /// the handler in the serial and threading models, when the child is reaped in the forking
    /// model (through ``endRequest(_:clientAddress:)``). Does nothing by default; override to
    /// release per-client accounting.
    open func requestEnded(_ request: Request, clientAddress: SocketAddress) {}

    /// Reports that a request ``processRequest(_:clientAddress:)`` took is over: counts it out of
    /// ``metrics``' active requests, then calls ``requestEnded(_:clientAddress:)``. The processing
    /// models call it; a subclass whose `processRequest` serves a request outside the model calls it
    /// once that request is over.
    public final func endRequest(_ request: Request, clientAddress: SocketAddress) {
        metrics.active.decrement()
        requestEnded(request, clientAddress: clientAddress)
    }

    /// What this server reports through swift-metrics (``ServerMetrics``), with its address as
    /// the dimension; created on first use, from ``metricsFactory``, once the address is known.
    /// Read without a lock (it is asked for several times per request); two threads that ask first at once may
    /// both create one, and all use the first stored.
    public var metrics: ServerMetrics {
        if let stored = reportedMetrics.load(ordering: .acquiring) {
            return Unmanaged<ServerMetrics>.fromOpaque(stored).takeUnretainedValue()
        }
        let created = Unmanaged.passRetained(ServerMetrics(address: serverAddress, factory: metricsFactory))
        let (stored, first) = reportedMetrics.compareExchange(
            expected: nil, desired: UnsafeRawPointer(created.toOpaque()), ordering: .acquiringAndReleasing)
        if stored { return created.takeUnretainedValue() }
        created.release()
        return Unmanaged<ServerMetrics>.fromOpaque(first!).takeUnretainedValue()
    }

    /// Runs one request to its end in whatever worker the processing model chose: the handler,
    /// ``handleError(_:clientAddress:error:)`` if it throws, then ``shutdownRequest(_:)``.
    /// - Returns: whether the handler finished without an error.
    @discardableResult
    public func runRequest(_ request: Request, clientAddress: SocketAddress) -> Bool {
        defer { shutdownRequest(request) }
        do {
            try finishRequest(request, clientAddress: clientAddress)
            return true
        } catch {
            handleError(request, clientAddress: clientAddress, error: error)
            return false
        }
    }

    /// Whether the server takes no new request for now: by default, while the processing model is at its
    /// ``ProcessingModel/capacity``. A subclass that runs some requests outside the model overrides it to count
    /// those too (and calls ``wake()`` when one of them ends); overriders should include `super`.
    open var isAtCapacity: Bool {
        guard let capacity = processingModel.capacity else { return false }
        return processingModel.activeRequests >= capacity
    }

    /// The monotonic time (``MonotonicClock/seconds()``) before which the server takes no new
    /// request although it has capacity: a rate limit waiting for its next token. Until then the
    /// serve loop does not watch the socket (clients wait in the backlog, datagrams in the receive
    /// buffer) and wakes at that time, without polling. `nil` (the default) or a time past: take
    /// requests now. A subclass that paces its requests overrides it and counts each request it
    /// takes (in ``getRequest()``).
    open var requestsResumeAt: Double? { nil }

    /// The monotonic time (``MonotonicClock/seconds()``) by which ``serviceActions()`` has work due,
    /// for example a request the server held back and serves then; `nil` (the default) when none.
    /// The serve loop passes again by that time even if nothing wakes it.
    open var serviceActionsDueAt: Double? { nil }

    // MARK: - Internals

    /// Whether the loop takes requests now: not at capacity, not paced, not paused after a failure.
    var isAccepting: Bool {
        if isAtCapacity { return false }
        let now = MonotonicClock.seconds()
        if let resume = requestsResumeAt, now < resume { return false }
        let pausedUntil = acceptPausedUntil.withLock { $0 }
        return pausedUntil == 0 || now >= pausedUntil
    }

    /// Takes, verifies and processes one request; returns whether there was one.
    private func handleRequestNoBlock() -> Bool {
        let next: (Request, SocketAddress)?
        do {
            next = try getRequest()
        } catch {
            noteGetRequestFailure(error)
            return false
        }
        guard let (request, client) = next else { return false }
        guard verifyRequest(request, clientAddress: client) else {
            metrics.refused.increment()
            shutdownRequest(request)
            return true
        }
        metrics.requests.increment()
        metrics.active.increment()
        do {
            try processRequest(request, clientAddress: client)
        } catch {
            metrics.active.decrement()
            handleError(request, clientAddress: client, error: error)
            shutdownRequest(request)
        }
        return true
    }

    /// Out of descriptors or memory, the listener stays readable and the loop would spin: stop
    /// polling it for a moment. A connection that died in the backlog is simply skipped.
    private func noteGetRequestFailure(_ error: any Error) {
        guard let error = error as? SocketError else {
            handleError(nil, clientAddress: nil, error: error)
            return
        }
        switch error.errno {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            // Logged once, then at most every 10 s: a peer holding the descriptors must not be
            // able to make the log grow by ten lines a second.
            let now = MonotonicClock.seconds()
            acceptPauses.record(logger, "\(serverAddress): \(error); pausing accept for 100 ms")
            acceptPausedUntil.withLock { $0 = now + 0.1 }
        case ECONNABORTED, EPROTO, EPERM, ENETDOWN, EHOSTUNREACH, ENETUNREACH, ECONNREFUSED:
            break
        default:
            handleError(nil, clientAddress: nil, error: error)
        }
    }
}
