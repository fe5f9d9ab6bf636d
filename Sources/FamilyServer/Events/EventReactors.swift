import CShims
import Glibc
import Logging
import Synchronization

/// A pool of reactors, one thread and one epoll set each (one per processor by default), that the ``EventModel``s of
/// any number of servers share.
///
/// A connection stays on the reactor whose serve loop accepted it, with no hand-over to another thread, while that
/// reactor has time to spare. Only once it is busy (three quarters of its last 100 ms or more spent serving) and the
/// machine has a processor idle (at least half of one, from `/proc/stat`) does a connection go to the reactor that
/// holds the fewest: a thread whose processor another process is using would only wait there, and two threads trading
/// connections cost more than they gain (measured with the bench's load generator sharing two processors: the
/// two-thread C epoll server reaches 0.72x of the one-thread one). So the pool spreads over the processors a busy
/// server can have, and stays on one thread where that is faster. A connection accepted on a thread that is not a
/// reactor goes to the one that holds the fewest.
///
/// The threads start with the pool and run until ``stop()``; an idle reactor sleeps in `epoll_wait` and costs
/// nothing.
///
/// Each reactor stamps a heartbeat whenever it completes a pass of its loop, for a service watchdog (systemd's
/// `WatchdogSec=`, see ``Watchdog``): before it pings, the watchdog's loop asks ``heartbeatsAreFresh(since:)``,
/// which wakes the reactors that have been quiet since then. An idle reactor answers the wake-up at once and counts
/// at the next check; a reactor stuck in a handler (an endless loop, a blocking call) does not, and holds the pings
/// back until systemd restarts the service:
///
///     if reactors.heartbeatsAreFresh(since: MonotonicClock.microseconds() - 250_000) {
///         try watchdog.pingIfDue()
///     }  // else: look again soon (the woken reactors pass within moments)
public final class EventReactors: Sendable {
    private let reactors: [EventReactor]
    private let stopped = Atomic<Bool>(false)
    private let rotation = Atomic<Int>(0)
    private let loopRotation = Atomic<Int>(0)
    /// The processors the machine left idle lately (`IdleProcessors.current(now:)`, replaced in tests).
    private let idleProcessors: @Sendable (Double) -> Double

    /// The share of its time a reactor spends serving from which the connections it accepts may go to others.
    static let busyToShare = 0.75
    /// The idle processors the machine must have for a connection to go to another reactor.
    static let idleToShare = 0.5

    /// The processors this process may run on, at least 1: the default number of reactors. Counted from its CPU
    /// affinity (`sched_getaffinity`, as `nproc` does), so that a service confined to some processors (`taskset`,
    /// systemd's `CPUAffinity=`, a cpuset) gets a reactor per processor it has; the processors online when the
    /// affinity cannot be read.
    public static var processorCount: Int {
        let count = Int(cshims_affinity_processor_count())
        return count > 0 ? count : onlineProcessorCount
    }

    /// The processors online (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
    static var onlineProcessorCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Creates `count` reactors and starts their threads.
    /// - Parameters:
    ///   - count: how many reactors (threads), at least 1.
    ///   - logger: where a reactor reports a failure of its own (not a connection's).
    /// - Throws: ``SocketError`` for `epoll_create1`, `eventfd` or `pthread_create`; reactors already started are
    ///   stopped first.
    public convenience init(count: Int = EventReactors.processorCount, logger: Logger = Logger(label: "FamilyServer"))
        throws(SocketError)
    {
        let sampler = IdleProcessors()
        try self.init(count: count, logger: logger, idleProcessors: { sampler.current(now: $0) })
    }

    /// Creates `count` reactors that ask `idleProcessors` (given the monotonic time) how many processors are idle.
    init(count: Int, logger: Logger, idleProcessors: @escaping @Sendable (Double) -> Double) throws(SocketError) {
        precondition(count >= 1, "EventReactors needs at least one reactor, not \(count)")
        var reactors: [EventReactor] = []
        do throws(SocketError) {
            for index in 0..<count {
                let reactor = try EventReactor(index: index, logger: logger)
                try reactor.start()
                reactors.append(reactor)
            }
        } catch {
            for reactor in reactors { reactor.stop() }
            throw error
        }
        self.reactors = reactors
        self.idleProcessors = idleProcessors
    }

    /// How many reactors (threads) serve.
    public var count: Int { reactors.count }

    /// Connections held now, over every reactor.
    public var connectionCount: Int { reactors.reduce(0) { $0 + $1.load.load(ordering: .relaxed) } }

    /// The heartbeat of the reactor that has been quiet longest: the monotonic time (µs, as
    /// ``MonotonicClock/microseconds()``) at which it last completed a pass of its loop.
    ///
    /// An idle reactor does not pass (it sleeps in `epoll_wait`), so a stale value alone does not mean a stuck one:
    /// ``heartbeatsAreFresh(since:)`` tells them apart.
    public var oldestHeartbeat: UInt64 {
        reactors.reduce(UInt64.max) { min($0, $1.heartbeat.load(ordering: .relaxed)) }
    }

    /// Whether every reactor has completed a pass of its loop at or after `time` (monotonic µs): the liveness a
    /// service watchdog should see before it pings.
    ///
    /// Every reactor that has not is woken (its eventfd; busy reactors pass all the time and are left alone), so that
    /// an idle one passes within moments and counts when the caller asks again; a reactor stuck in a handler does not
    /// pass, however often it is woken, and keeps the answer false. Ask again after a short while (tens of
    /// milliseconds), not in a tight loop.
    /// - Parameter time: how recent a pass must be, as ``MonotonicClock/microseconds()``.
    /// - Returns: true when every reactor passed since `time`; also true once the pool is stopped (no reactor left
    ///   to be stuck).
    public func heartbeatsAreFresh(since time: UInt64) -> Bool {
        guard !isStopped else { return true }
        var fresh = true
        for reactor in reactors where reactor.heartbeat.load(ordering: .relaxed) < time {
            reactor.wake()
            fresh = false
        }
        return fresh
    }

    /// Whether ``stop()`` was called.
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Closes every connection (``EventCloseReason/cutShort``) and ends the threads; returns once they have ended.
    /// Idempotent. Never call it from a handler (a reactor cannot wait for itself).
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for reactor in reactors { reactor.stop() }
    }

    /// Runs the serve loop of `server` on the next reactor in turn until a shutdown is requested; the caller waits
    /// meanwhile. Returns `false` at once once the pool is stopped.
    func runServeLoop(of server: BaseServer, pollInterval: Double) -> Bool {
        guard let loop = startServeLoop(of: server, pollInterval: pollInterval, onEnd: nil) else { return false }
        loop.waitUntilEnded()
        return true
    }

    /// Hands the serve loop of `server` to the next reactor in turn and returns at once; `onEnd` runs once a
    /// shutdown let it go (or the reactors stopped). `nil`, and nothing handed, once the pool is stopped.
    @discardableResult
    func startServeLoop(
        of server: BaseServer, pollInterval: Double, onEnd: (@Sendable () -> Void)?
    ) -> ReactorServeLoop? {
        guard !isStopped else { return nil }
        let loop = ReactorServeLoop(server: server, pollInterval: pollInterval, onEnd: onEnd)
        reactors[loopRotation.add(1, ordering: .relaxed).newValue % reactors.count].run(loop)
        return loop
    }

    /// Hands an accepted connection to a reactor: on a reactor's own thread (a serve loop it runs accepted it), that
    /// reactor while it has time to spare or no processor is idle; else the least loaded one (ties go round in turn).
    func adopt(_ request: Request, clientAddress: SocketAddress, server: BaseServer, model: EventModel) {
        let current = reactors.first { $0.isCurrentThread }
        if let current, !mayShare(current) {
            current.adoptHere(request, clientAddress: clientAddress, server: server, model: model)
            return
        }
        let start = rotation.add(1, ordering: .relaxed).newValue
        var chosen = current ?? reactors[start % reactors.count]
        var least = chosen.load.load(ordering: .relaxed)
        for offset in 0..<reactors.count where least > 0 {
            let reactor = reactors[(start + offset) % reactors.count]
            let load = reactor.load.load(ordering: .relaxed)
            if load < least {
                chosen = reactor
                least = load
            }
        }
        if chosen === current {
            chosen.adoptHere(request, clientAddress: clientAddress, server: server, model: model)
        } else {
            chosen.adopt(request, clientAddress: clientAddress, server: server, model: model)
        }
    }

    /// Whether a connection accepted on `reactor` may go to another: there is another, `reactor` is busy, and a
    /// processor is idle for it.
    private func mayShare(_ reactor: EventReactor) -> Bool {
        reactors.count > 1 && reactor.busyFraction >= Self.busyToShare
            && idleProcessors(MonotonicClock.seconds()) >= Self.idleToShare
    }

    /// Closes every connection of `server` on every reactor.
    func cutShort(server: BaseServer) {
        for reactor in reactors { reactor.cutShort(server: server) }
    }
}
