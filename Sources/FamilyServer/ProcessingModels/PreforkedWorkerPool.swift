import CShims
import Glibc

/// The forking model's pre-forked workers (``ForkingModel/preforkedWorkers``): child processes forked once, each
/// serving connection after connection that the serving process passes it over a ``WorkerChannel``.
///
/// Seen from the serving process a worker is idle, busy with one request, or retiring (it exits after its request).
/// ``fill(server:setup:)`` forks workers until the pool has its size, on the serving thread between requests (so that
/// no worker inherits a connection it was not given); a worker that hangs up (exited, killed) is dropped, its request
/// counted as ended, and the next fill replaces it. ``retire()`` makes every worker leave (idle ones at once, busy
/// ones after their request), so that the next requests go to workers forked from the process as it is now;
/// ``close()`` does so for good.
final class PreforkedWorkerPool: Sendable {
    /// A worker process, as the serving process sees it.
    private struct Worker: Sendable {
        var channel: WorkerChannel
        /// The request it serves now; `nil` while idle.
        var request: (request: Request, clientAddress: SocketAddress)?
        /// Leaves once its request is over, and no longer counts in the pool's size.
        var retiring = false
    }

    private struct State: Sendable {
        var workers: [pid_t: Worker] = [:]
        /// Workers whose channel is closed, not yet reaped.
        var leaving: Set<pid_t> = []
        /// Set by ``close()``: no worker is forked any more.
        var closed = false
    }

    /// The most workers at once (retiring ones aside).
    let size: Int
    private let state = ConditionLock(State())

    /// The serving process's ends of the channels of every pool in this process, which every child a forking model
    /// forks closes first: a worker whose channel another process still held open (a worker of another listener's
    /// pool, say) would never see its retirement.
    private static let openChannels = ConditionLock<Set<Int32>>([])

    /// ``openChannels`` now, to close in a child about to be forked.
    static var channelsToCloseInChildren: [Int32] { openChannels.withLock { Array($0) } }

    /// A pool of at most `size` workers.
    init(size: Int) {
        self.size = size
    }

    /// Requests the workers serve now.
    var busyCount: Int { state.withLock { $0.workers.values.count { $0.request != nil } } }

    /// The process ids of the workers serving a request now.
    var busyWorkers: [pid_t] { state.withLock { $0.workers.filter { $0.value.request != nil }.map(\.key) } }

    /// The process ids of every worker not reaped yet, idle, busy or leaving.
    var allWorkers: Set<pid_t> { state.withLock { Set($0.workers.keys).union($0.leaving) } }

    /// Passes `request` to an idle worker. Call on the serving thread.
    /// - Returns: `false` when no worker is idle (or the request is no connection).
    func serve(_ request: Request, clientAddress: SocketAddress) -> Bool {
        guard let connection = request.connection else { return false }
        while let (pid, channel) = idleWorker() {
            do {
                try channel.pass(connection, clientAddress: clientAddress)
                state.withLock { $0.workers[pid]?.request = (request, clientAddress) }
                return true
            } catch {
                // Gone since it last reported; the next collect reaps it.
                dropWorker(pid)
            }
        }
        return false
    }

    /// Forks workers until the pool has its size, retiring ones aside; none once closed. Call on the serving thread
    /// while it holds no request: a worker keeps every descriptor the process had open when it was forked.
    /// - Throws: ``SocketError`` for `socketpair` or `fork`.
    func fill(server: BaseServer, setup: (@Sendable () -> Void)?) throws(SocketError) {
        while state.withLock({ !$0.closed && $0.workers.values.count { !$0.retiring } < size }) {
            _ = try fork(server: server, setup: setup)
        }
    }

    /// What ``collect()`` found: the requests whose worker finished or hung up, and the workers reaped with their
    /// wait status.
    struct Collected {
        /// Requests now over, for ``BaseServer/endRequest(_:clientAddress:)``.
        var ended: [(request: Request, clientAddress: SocketAddress)] = []
        /// Workers reaped, with their wait status.
        var exited: [(pid: pid_t, status: Int32)] = []
    }

    /// Reads every worker's reports and reaps those that left, without waiting.
    func collect() -> Collected {
        var collected = Collected()
        let descriptors = state.withLock { $0.workers.map { ($0.key, $0.value.channel.fileDescriptor) } }
        let ready = (try? Poll.readable(descriptors.map(\.1), timeout: 0)) ?? descriptors.map { _ in true }
        for ((pid, _), isReady) in zip(descriptors, ready) where isReady {
            state.withLock { state in
                guard let worker = state.workers[pid] else { return }
                let (done, hungUp) = worker.channel.readReports()
                if done > 0, let request = worker.request {
                    collected.ended.append(request)
                    state.workers[pid]?.request = nil
                }
                if hungUp, done == 0, let request = worker.request { collected.ended.append(request) }
                if hungUp || (worker.retiring && done > 0) { Self.drop(pid, in: &state) }
            }
        }
        collected.exited = reap(blocking: false)
        return collected
    }

    /// Makes every worker leave, as ``retire()`` does, and forks none any more.
    func close() {
        state.withLock { $0.closed = true }
        retire()
    }

    /// Makes every worker leave: idle ones now, busy ones once their request is over.
    func retire() {
        state.withLock { state in
            for (pid, worker) in state.workers {
                if worker.request == nil {
                    Self.drop(pid, in: &state)
                } else {
                    state.workers[pid]?.retiring = true
                }
            }
        }
    }

    /// Waits until no worker serves a request any more, collecting as it goes.
    /// - Parameter each: Called with what every pass collected.
    func waitForBusyWorkers(_ each: (Collected) -> Void) {
        while true {
            each(collect())
            let busy = state.withLock { $0.workers.values.filter { $0.request != nil }.map(\.channel.fileDescriptor) }
            if busy.isEmpty { return }
            _ = try? Poll.readable(busy, timeout: nil)
        }
    }

    /// Reaps the workers that left; with `blocking`, waits for each.
    func reap(blocking: Bool) -> [(pid: pid_t, status: Int32)] {
        var exited: [(pid: pid_t, status: Int32)] = []
        for pid in state.withLock({ $0.leaving }) {
            let exit = ChildExit.of(pid, blocking: blocking)
            if case .running = exit { continue }
            state.withLock { _ = $0.leaving.remove(pid) }
            if case .exited(let status) = exit { exited.append((pid, status)) }
        }
        return exited
    }

    // MARK: - Internals

    private func idleWorker() -> (pid_t, WorkerChannel)? {
        state.withLock { state in
            state.workers.first { $0.value.request == nil && !$0.value.retiring }.map { ($0.key, $0.value.channel) }
        }
    }

    private func dropWorker(_ pid: pid_t) {
        state.withLock { Self.drop(pid, in: &$0) }
    }

    /// Closes a worker's channel (it exits once it reads the end of file) and leaves it to be reaped.
    private static func drop(_ pid: pid_t, in state: inout State) {
        guard var worker = state.workers.removeValue(forKey: pid) else { return }
        _ = openChannels.withLock { $0.remove(worker.channel.fileDescriptor) }
        worker.channel.close()
        state.leaving.insert(pid)
    }

    /// Forks a worker, which serves connections from its channel until the channel closes.
    private func fork(server: BaseServer, setup: (@Sendable () -> Void)?) throws(SocketError) -> pid_t {
        var (parentEnd, workerEnd) = try WorkerChannel.pair()
        let inherited = Self.channelsToCloseInChildren
        let pid = cshims_fork()
        if pid < 0 {
            let code = errno
            parentEnd.close()
            workerEnd.close()
            throw SocketError("fork", errno: code, subject: "\(server.serverAddress) worker")
        }
        if pid == 0 {
            cshims_reset_signals()
            server.socket.close()
            for fd in inherited { _ = Glibc.close(fd) }
            parentEnd.close()
            setup?()
            Self.serveConnections(from: workerEnd, server: server)
        }
        workerEnd.close()
        _ = Self.openChannels.withLock { $0.insert(parentEnd.fileDescriptor) }
        state.withLock { $0.workers[pid] = Worker(channel: parentEnd) }
        return pid
    }

    /// The worker's life: every connection passed to it, one after another, then exit 0.
    private static func serveConnections(from channel: WorkerChannel, server: BaseServer) -> Never {
        let pid = getpid()
        while let (connection, client) = channel.nextConnection(family: server.addressFamily) {
            server.logger.debug("\(server.serverAddress): worker process \(pid) serves \(client)")
            server.runRequest(.connection(connection), clientAddress: client)
            guard channel.reportDone() else { break }
            server.wake()
        }
        _exit(0)
    }
}
