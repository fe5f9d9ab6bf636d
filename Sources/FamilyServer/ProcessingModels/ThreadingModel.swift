/// Runs each request on a thread of its own (Python's `ThreadingMixIn`), reusing parked threads.
///
/// A request goes to an idle worker if one is parked, else to a new thread; a worker that finishes
/// parks for ``idleThreadTimeout`` seconds waiting for the next request, then exits. So threads
/// never accumulate beyond the peak number of requests in flight, and a burst of short
/// connections does not pay a thread start each.
public final class ThreadingModel: ProcessingModel {
    /// Don't wait for running requests on close (Python's `daemon_threads`).
    public let daemonThreads: Bool
    /// Wait for running requests on close unless ``daemonThreads`` (Python's `block_on_close`).
    public let blockOnClose: Bool
    /// The most requests served at once; `nil` for no limit (Python has none). May be changed
    /// while serving.
    public var maxThreads: Int? {
        get { state.withLock { $0.maxThreads } }
        set { state.withLock(notify: .none) { $0.maxThreads = newValue } }
    }
    /// How long a worker stays parked for reuse before it exits.
    public let idleThreadTimeout: Double

    private struct Job: Sendable {
        var request: Request
        var clientAddress: SocketAddress
        var server: BaseServer
    }

    private struct State: Sendable {
        var active = 0
        var idle = 0
        var threads = 0
        var queue: [Job] = []
        var closing = false
        var maxThreads: Int?
    }

    private let state: ConditionLock<State>

    /// Creates a threading model.
    public init(daemonThreads: Bool = false, blockOnClose: Bool = true, maxThreads: Int? = nil, idleThreadTimeout: Double = 10) {
        self.daemonThreads = daemonThreads
        self.blockOnClose = blockOnClose
        self.state = ConditionLock(State(maxThreads: maxThreads))
        self.idleThreadTimeout = idleThreadTimeout
    }

    public var activeRequests: Int { state.withLock { $0.active } }
    public var capacity: Int? {
        get { maxThreads }
        set { maxThreads = newValue }
    }
    public var forksWorkers: Bool { false }
    public var runsRequestsOnServingThread: Bool { false }

    /// Threads alive now, running or parked.
    public var threadCount: Int { state.withLock { $0.threads } }

    public func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) throws {
        let job = Job(request: request, clientAddress: clientAddress, server: server)
        let handedOver = state.withLock(notify: .one) { state -> Bool in
            state.active += 1
            guard state.idle > state.queue.count else {
                state.threads += 1
                return false
            }
            state.queue.append(job)
            return true
        }
        if handedOver { return }
        do {
            try DetachedThread.start { [self] in work(job) }
        } catch {
            state.withLock(notify: .all) {
                $0.active -= 1
                $0.threads -= 1
            }
            throw error
        }
    }

    private func work(_ first: Job) {
        var job = first
        while true {
            job.server.runRequest(job.request, clientAddress: job.clientAddress)
            job.server.endRequest(job.request, clientAddress: job.clientAddress)
            // Only close() waits for a request to end; waking every parked worker on every
            // request would cost a futex storm per connection.
            let (wakeServer, lastOneOut) = state.withLock { state -> (Bool, Bool) in
                state.active -= 1
                state.idle += 1
                return (state.maxThreads.map { state.active == $0 - 1 } ?? false, state.closing && state.active == 0)
            }
            if lastOneOut { state.withLock(notify: .all) { _ in } }
            if wakeServer { job.server.wake() }
            let next = state.wait(until: { !$0.queue.isEmpty || $0.closing }, timeout: idleThreadTimeout) {
                state, _ -> Job? in
                state.idle -= 1
                if !state.queue.isEmpty { return state.queue.removeFirst() }
                state.threads -= 1
                return nil
            }
            guard let next else { return }
            job = next
        }
    }

    public func collect(server: BaseServer) {}

    /// Nothing to end here: the requests run in this process, where the server shuts their
    /// connections down.
    public func cutShort(server: BaseServer) {}

    /// Releases parked workers and, with ``blockOnClose`` and without ``daemonThreads``, waits
    /// until every running request has finished.
    public func close(server: BaseServer) {
        state.withLock(notify: .all) { $0.closing = true }
        guard blockOnClose && !daemonThreads else { return }
        state.wait(until: { $0.active == 0 }) { _, _ in }
    }
}
