import CShims
import FamilyServer
import Glibc
import Synchronization

/// Every exec child of the daemon from its start to its reaping, watched by one epoll set: no thread and no blocking
/// wait per child. Its stderr is read as it comes and cut into log lines (``StandardErrorRelay``); its pidfd says when
/// it exited, and then it is reaped, what it wrote just before is taken (bounded) and its end is reported.
///
/// Any thread may ``watch(_:line:exited:)`` a child; one thread at a time runs ``serviceEvents()``, which the
/// daemon's control loop calls whenever ``descriptor`` is readable (and, while a child without a pidfd is watched,
/// every ``lookInterval``). The callbacks run there.
final class ExecSupervisor: @unchecked Sendable {
    // @unchecked: `watched` is behind a Mutex; the relays and the read buffer are touched only by the one thread that
    // holds `servicing`.

    /// The daemon's supervisor.
    static let shared = ExecSupervisor()

    /// How often children without a pidfd (a kernel without CLONE_PIDFD, or none left) are looked at.
    static let lookInterval = 0.05

    /// The most bytes read from stderr once the child has exited: what it wrote just before, but not a background
    /// process's endless output.
    static let drainLimit = 1 << 20

    /// The epoll set: readable when a watched child wrote to stderr or exited; -1 if it could not be made (then every
    /// child is looked at, and its stderr read, every ``lookInterval``). Made at the daemon's start, before any
    /// shortage of descriptors could prevent it.
    let descriptor: Int32

    /// One child; its mutable parts are touched only by the thread that services the events.
    private final class Watched: @unchecked Sendable {
        let child: ExecChild
        var relay = StandardErrorRelay()
        var standardError: Int32
        /// Whether stderr is read by looking (not in the epoll set).
        var readWhenLooking = false
        let line: @Sendable (StandardErrorRelay.Line) -> Void
        let exited: @Sendable (ExecChild, Int32) -> Void

        init(
            _ child: ExecChild, line: @escaping @Sendable (StandardErrorRelay.Line) -> Void,
            exited: @escaping @Sendable (ExecChild, Int32) -> Void
        ) {
            self.child = child
            self.standardError = child.standardError
            self.line = line
            self.exited = exited
        }
    }

    private struct Registry {
        var nextToken: UInt64 = 0
        var children: [UInt64: Watched] = [:]
        /// Tokens of children whose exit no epoll event reports.
        var lookedAt: Set<UInt64> = []
    }

    private let watched = Mutex(Registry())
    private let servicing = Atomic<Bool>(false)
    private var chunk = [UInt8](repeating: 0, count: 65536)

    private init() {
        descriptor = cshims_epoll_create()
    }

    /// The pids of the children watched now (started, not reaped yet).
    var runningPIDs: Set<pid_t> { watched.withLock { Set($0.children.values.map(\.child.pid)) } }

    /// Whether a child is watched whose exit only a look every ``lookInterval`` finds.
    var looksForExits: Bool { watched.withLock { !$0.lookedAt.isEmpty } }

    /// Takes over `child`: calls `line` for each line it writes to stderr and, once it has been reaped, `exited` with
    /// it and its wait status (``ExecChild/failure`` then says whether it ran the program); its record is freed after.
    /// Both run on the thread that services the events.
    func watch(
        _ child: ExecChild, line: @escaping @Sendable (StandardErrorRelay.Line) -> Void,
        exited: @escaping @Sendable (ExecChild, Int32) -> Void
    ) {
        let entry = Watched(child, line: line, exited: exited)
        let token = watched.withLock { registry in
            registry.nextToken += 1
            registry.children[registry.nextToken] = entry
            return registry.nextToken
        }
        entry.readWhenLooking = !(descriptor >= 0 && cshims_epoll_watch(descriptor, child.standardError, token << 1) == 0)
        let notified = descriptor >= 0 && child.exitNotice >= 0 && cshims_epoll_watch(descriptor, child.exitNotice, token << 1 | 1) == 0
        if !notified || entry.readWhenLooking {
            watched.withLock { _ = $0.lookedAt.insert(token) }
        }
    }

    /// Handles what is ready now, without waiting: stderr that came, children that exited. Returns at once when
    /// another thread is servicing.
    func serviceEvents() {
        guard servicing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return }
        defer { servicing.store(false, ordering: .releasing) }
        if descriptor >= 0 {
            var tokens = [UInt64](repeating: 0, count: 64)
            for _ in 0..<16 {
                let ready = Int(cshims_epoll_ready(descriptor, &tokens, 64, 0))
                guard ready > 0 else { break }
                for token in tokens.prefix(ready) {
                    guard let entry = watched.withLock({ $0.children[token >> 1] }) else { continue }
                    if token & 1 == 1 {
                        reapIfExited(token >> 1, entry)
                    } else {
                        readStandardError(entry, limit: chunk.count)
                    }
                }
                if ready < 64 { break }
            }
        }
        let looked = watched.withLock { registry in registry.lookedAt.compactMap { token in registry.children[token].map { (token, $0) } } }
        for (token, entry) in looked {
            if entry.readWhenLooking { readStandardError(entry, limit: chunk.count) }
            reapIfExited(token, entry)
        }
    }

    /// Runs ``serviceEvents()`` until `done` says so, waiting on ``descriptor`` in between: for a caller that has
    /// nothing else to do meanwhile (the one connection of `Accept=yes`).
    func serviceEvents(until done: () -> Bool) {
        while !done() {
            let wait = looksForExits || descriptor < 0 ? Self.lookInterval : 1
            _ = try? Poll.readable(descriptor >= 0 ? [descriptor] : [], timeout: wait)
            serviceEvents()
        }
    }

    /// Called first in a forked worker: closes the copies of the supervisor's descriptors it inherited (the worker
    /// never services them, and a copy would keep a child's stderr pipe open).
    func closeInheritedDescriptors() {
        let entries = watched.withLock { Array($0.children.values) }
        for entry in entries {
            if entry.standardError >= 0 { close(entry.standardError) }
            if entry.child.exitNotice >= 0 { close(entry.child.exitNotice) }
        }
        if descriptor >= 0 { close(descriptor) }
    }

    /// Reads stderr once, up to `limit` bytes, without blocking: the byte count, 0 when it ended (then it is
    /// closed), -1 when nothing is there.
    @discardableResult
    private func readStandardError(_ entry: Watched, limit: Int) -> Int {
        guard entry.standardError >= 0 else { return 0 }
        var got: Int
        repeat {
            got = chunk.withUnsafeMutableBytes { read(entry.standardError, $0.baseAddress, min(limit, $0.count)) }
        } while got < 0 && errno == EINTR
        if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return -1 }
        guard got > 0 else {
            closeStandardError(entry)
            return 0
        }
        chunk.withUnsafeBytes { entry.relay.append(UnsafeRawBufferPointer(rebasing: $0[0..<got]), emit: entry.line) }
        return got
    }

    private func closeStandardError(_ entry: Watched) {
        guard entry.standardError >= 0 else { return }
        if descriptor >= 0 { _ = cshims_epoll_forget(descriptor, entry.standardError) }
        close(entry.standardError)
        entry.standardError = -1
    }

    /// Reaps the child if it has exited: takes what is readable of its stderr at once (a background process that
    /// holds stderr open holds up nothing), emits the last line, closes its descriptors and reports its end.
    private func reapIfExited(_ token: UInt64, _ entry: Watched) {
        var status: Int32 = 0
        var result: pid_t
        repeat {
            result = waitpid(entry.child.pid, &status, WNOHANG)
        } while result < 0 && errno == EINTR
        guard result != 0 else { return }
        var taken = 0
        while taken < Self.drainLimit {
            let got = readStandardError(entry, limit: Self.drainLimit - taken)
            if got <= 0 { break }
            taken += got
        }
        entry.relay.finish(emit: entry.line)
        closeStandardError(entry)
        if entry.child.exitNotice >= 0 {
            if descriptor >= 0 { _ = cshims_epoll_forget(descriptor, entry.child.exitNotice) }
            close(entry.child.exitNotice)
        }
        watched.withLock { registry in
            registry.children[token] = nil
            registry.lookedAt.remove(token)
        }
        // ECHILD: reaped elsewhere (it cannot be: only the supervisor waits for exec children); report an exit.
        entry.exited(entry.child, result == entry.child.pid ? status : 0)
        entry.child.freeRecord()
    }
}
