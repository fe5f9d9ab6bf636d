import CShims
import Glibc
import Synchronization

/// Runs each request in a child process of its own (Python's `ForkingMixIn`), or in one of a pool
/// of pre-forked workers.
///
/// The child serves the request and exits (0, or 1 if the handler threw); the parent closes its
/// copy of the connection and reaps children on every pass of the serve loop. Only children this
/// model forked are waited for, never other children of the process. A child that dies by a
/// signal or exits non-zero is logged.
///
/// With ``preforkedWorkers`` above 0, a stream connection goes first to an idle worker of a pool
/// of that many: a child forked once, on the serving thread, that serves connection after
/// connection passed to it over a socketpair (SCM_RIGHTS), and reports each one's end, whereupon
/// the serving process calls ``BaseServer/endRequest(_:clientAddress:)``. The pool is filled on
/// every pass of the serve loop (``collect(server:)``), between requests. With no worker idle, the
/// connection gets a child of its own as without a pool, so ``maxChildren`` counts busy workers
/// and children together and a slow client never holds the pool up. A worker that dies is noticed
/// on the next pass of the serve loop (its channel hangs up), its request counted as ended, and a
/// fresh one is forked in its place. A worker keeps the state of the process it was forked from,
/// and what one connection left in its memory the next one finds: ``retireWorkers(server:)``
/// replaces the workers after a change of configuration; a program that wants a fresh process per
/// connection leaves the pool off.
public final class ForkingModel: ProcessingModel {
    /// The most children at once; at that count the serve loop takes no new request. May be
    /// changed while serving.
    public var maxChildren: Int {
        get { limit.load(ordering: .relaxed) }
        set { limit.store(newValue, ordering: .relaxed) }
    }
    /// Runs first in every child, before the request.
    public let workerSetup: (@Sendable () -> Void)?
    /// How ``cutShort(server:)`` ends one child.
    public let terminateWorker: @Sendable (pid_t) -> Void
    /// Wait for every child on close (else they are reaped if already done and left to finish).
    public let blockOnClose: Bool
    /// The size of the pool of pre-forked workers; 0 forks a child for every request.
    public var preforkedWorkers: Int { pool?.size ?? 0 }

    private struct Child: Sendable {
        var request: Request
        var clientAddress: SocketAddress
    }

    private let children = ConditionLock<[pid_t: Child]>([:])
    private let limit: Atomic<Int>
    private let pool: PreforkedWorkerPool?
    /// Failures to fork a pre-forked worker, logged at most every 10 s.
    private let workerStartFailures = ThrottledWarning()

    /// Creates a forking model.
    /// - Parameters:
    ///   - maxChildren: The most children at once, busy pre-forked workers included.
    ///   - preforkedWorkers: The size of the pool of pre-forked workers that serve stream
    ///     connection after connection, forked on the serving thread between requests; 0 (the
    ///     default) forks a child for every request.
    ///   - blockOnClose: Whether closing the server waits for every child.
    ///   - workerSetup: Runs first in every child and pre-forked worker: a program with several
    ///     servers closes the other servers' sockets there, which the child must not keep open.
    ///   - terminateWorker: How ``cutShort(server:)`` ends one child; SIGTERM by default. A program
    ///     whose workers start programs of their own ends those too.
    public init(
        maxChildren: Int = 40, preforkedWorkers: Int = 0, blockOnClose: Bool = true,
        workerSetup: (@Sendable () -> Void)? = nil,
        terminateWorker: @escaping @Sendable (pid_t) -> Void = { kill($0, SIGTERM) }
    ) {
        self.workerSetup = workerSetup
        self.terminateWorker = terminateWorker
        self.limit = Atomic(maxChildren)
        self.blockOnClose = blockOnClose
        self.pool = preforkedWorkers > 0 ? PreforkedWorkerPool(size: preforkedWorkers) : nil
    }

    public var activeRequests: Int { children.withLock { $0.count } + (pool?.busyCount ?? 0) }
    public var capacity: Int? {
        get { maxChildren }
        set { maxChildren = newValue ?? Int.max }
    }
    public var forksWorkers: Bool { true }
    public var runsRequestsOnServingThread: Bool { false }

    /// The process ids of the children still running (or not yet reaped) and of the pre-forked
    /// workers serving a request now.
    public var activeChildren: Set<pid_t> { children.withLock { Set($0.keys) }.union(pool?.busyWorkers ?? []) }

    /// The process ids of every pre-forked worker not reaped yet, idle, busy or leaving.
    public var preforkedWorkerProcesses: Set<pid_t> { pool?.allWorkers ?? [] }

    public func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) throws {
        if let pool, passToWorker(request, clientAddress: clientAddress, server: server, pool: pool) {
            server.closeRequest(request)
            return
        }
        let poolChannels = PreforkedWorkerPool.channelsToCloseInChildren
        let pid = cshims_fork()
        if pid < 0 {
            throw SocketError("fork", errno: errno, subject: clientAddress.description)
        }
        if pid == 0 {
            // The child: default signal handling, no listener of its own, one request, then out.
            cshims_reset_signals()
            if request.connection != nil { server.socket.close() }
            for fd in poolChannels { Glibc.close(fd) }
            workerSetup?()
            let succeeded = server.runRequest(request, clientAddress: clientAddress)
            server.wake()
            _exit(succeeded ? 0 : 1)
        }
        children.withLock { $0[pid] = Child(request: request, clientAddress: clientAddress) }
        server.closeRequest(request)
    }

    /// Reaps finished children, reads the pre-forked workers' reports and forks workers the pool
    /// lacks.
    public func collect(server: BaseServer) {
        reap(server: server, blocking: false)
        guard let pool else { return }
        account(pool.collect(), server: server)
        do {
            try pool.fill(server: server, setup: workerSetup)
        } catch {
            workerStartFailures.record(server.logger, "\(server.serverAddress): cannot start a pre-forked worker: \(error)")
        }
    }

    /// Retires the pre-forked workers (idle ones exit, busy ones after their request) and, if
    /// configured, waits for every child and busy worker.
    public func close(server: BaseServer) {
        pool?.close()
        reap(server: server, blocking: blockOnClose)
        guard let pool else { return }
        if blockOnClose {
            pool.waitForBusyWorkers { account($0, server: server) }
            for (pid, status) in pool.reap(blocking: true) { report(pid: pid, status: status, server: server) }
        } else {
            account(pool.collect(), server: server)
        }
    }

    /// Ends every child and busy pre-forked worker with ``terminateWorker``; they are reaped as
    /// usual.
    public func cutShort(server: BaseServer) {
        for pid in activeChildren { terminateWorker(pid) }
    }

    /// Makes the pre-forked workers, which hold the process's state from when they were forked,
    /// leave (idle ones now, busy ones after their request); the next pass of the serve loop forks
    /// new ones.
    public func retireWorkers(server: BaseServer) {
        guard let pool else { return }
        pool.retire()
        account(pool.collect(), server: server)
    }

    /// Passes a request to a pre-forked worker; when every worker looked busy, reads their reports first (some may
    /// have finished since the last pass of the serve loop) rather than fork a child at once.
    private func passToWorker(
        _ request: Request, clientAddress: SocketAddress, server: BaseServer, pool: PreforkedWorkerPool
    ) -> Bool {
        if pool.serve(request, clientAddress: clientAddress) { return true }
        let collected = pool.collect()
        guard !collected.ended.isEmpty || !collected.exited.isEmpty else { return false }
        account(collected, server: server)
        return pool.serve(request, clientAddress: clientAddress)
    }

    /// Ends the requests a collect of the pool found over, and reports the workers it reaped.
    private func account(_ collected: PreforkedWorkerPool.Collected, server: BaseServer) {
        for (pid, status) in collected.exited { report(pid: pid, status: status, server: server) }
        for (request, clientAddress) in collected.ended { server.endRequest(request, clientAddress: clientAddress) }
    }

    private func reap(server: BaseServer, blocking: Bool) {
        for pid in children.withLock({ Array($0.keys) }) {
            let exit = ChildExit.of(pid, blocking: blocking)
            if case .running = exit { continue }
            let child = children.withLock { $0.removeValue(forKey: pid) }
            if case .exited(let status) = exit { report(pid: pid, status: status, server: server) }
            if let child { server.endRequest(child.request, clientAddress: child.clientAddress) }
        }
    }

    private func report(pid: pid_t, status: Int32, server: BaseServer) {
        let signal = status & 0x7f
        if signal != 0 {
            server.logger.error("\(server.serverAddress): worker process \(pid) killed by signal \(signal)")
        } else if (status >> 8) & 0xff != 0 {
            server.logger.warning("\(server.serverAddress): worker process \(pid) exited with status \((status >> 8) & 0xff)")
        }
    }
}
