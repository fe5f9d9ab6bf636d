import CShims
import Glibc
import Synchronization

/// Runs each request in a child process of its own (Python's `ForkingMixIn`).
///
/// The child serves the request and exits (0, or 1 if the handler threw); the parent closes its
/// copy of the connection and reaps children on every pass of the serve loop. Only children this
/// model forked are waited for, never other children of the process. A child that dies by a
/// signal or exits non-zero is logged.
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

    private struct Child: Sendable {
        var request: Request
        var clientAddress: SocketAddress
    }

    private let children = ConditionLock<[pid_t: Child]>([:])
    private let limit: Atomic<Int>

    /// Creates a forking model.
    /// - Parameters:
    ///   - maxChildren: The most children at once.
    ///   - blockOnClose: Whether closing the server waits for every child.
    ///   - workerSetup: Runs first in every child: a program with several servers closes the other
    ///     servers' sockets there, which the child must not keep open.
    ///   - terminateWorker: How ``cutShort(server:)`` ends one child; SIGTERM by default. A program
    ///     whose workers start programs of their own ends those too.
    public init(
        maxChildren: Int = 40, blockOnClose: Bool = true, workerSetup: (@Sendable () -> Void)? = nil,
        terminateWorker: @escaping @Sendable (pid_t) -> Void = { kill($0, SIGTERM) }
    ) {
        self.workerSetup = workerSetup
        self.terminateWorker = terminateWorker
        self.limit = Atomic(maxChildren)
        self.blockOnClose = blockOnClose
    }

    public var activeRequests: Int { children.withLock { $0.count } }
    public var capacity: Int? {
        get { maxChildren }
        set { maxChildren = newValue ?? Int.max }
    }
    public var forksWorkers: Bool { true }
    public var runsRequestsOnServingThread: Bool { false }

    /// The process ids of the children still running (or not yet reaped).
    public var activeChildren: Set<pid_t> { children.withLock { Set($0.keys) } }

    public func process(_ request: Request, clientAddress: SocketAddress, server: BaseServer) throws {
        let pid = cshims_fork()
        if pid < 0 {
            throw SocketError("fork", errno: errno, subject: clientAddress.description)
        }
        if pid == 0 {
            // The child: default signal handling, no listener of its own, one request, then out.
            cshims_reset_signals()
            if request.connection != nil { server.socket.close() }
            workerSetup?()
            let succeeded = server.runRequest(request, clientAddress: clientAddress)
            server.wake()
            _exit(succeeded ? 0 : 1)
        }
        children.withLock { $0[pid] = Child(request: request, clientAddress: clientAddress) }
        server.closeRequest(request)
    }

    public func collect(server: BaseServer) {
        reap(server: server, blocking: false)
    }

    public func close(server: BaseServer) {
        reap(server: server, blocking: blockOnClose)
    }

    /// Ends every child with ``terminateWorker``; they are reaped as usual.
    public func cutShort(server: BaseServer) {
        for pid in activeChildren { terminateWorker(pid) }
    }

    private func reap(server: BaseServer, blocking: Bool) {
        for pid in activeChildren {
            var status: Int32 = 0
            var result: pid_t
            repeat {
                result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            } while result < 0 && errno == EINTR
            guard result == pid || (result < 0 && errno == ECHILD) else { continue }
            let child = children.withLock { $0.removeValue(forKey: pid) }
            if result == pid { report(pid: pid, status: status, server: server) }
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
