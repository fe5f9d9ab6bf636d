import Glibc
import Logging
import Synchronization

/// One thread and one epoll set that serve many connections: reads what is ready, calls the handlers, sends what they
/// wrote as the clients take it, and closes connections whose time is up.
///
/// It may also run servers' serve loops (``ReactorServeLoop``): a connection accepted there is opened on the spot.
///
/// Other threads talk to it only through its inbox (``adopt(_:clientAddress:server:model:)``, ``run(_:)``,
/// ``cutShort(server:)``, ``stop()``) and its wake-up eventfd (``wake()``), and read its ``heartbeat`` and ``load``.
/// Everything else — the connections, the serve loops, the deadlines, the read buffer — belongs to the reactor's thread
/// alone.
final class EventReactor: @unchecked Sendable {
    // @unchecked: `connections`, `serveLoops`, `deadlines`, `nextToken`, `passStarted` and `readBuffer` are used on
    // the reactor's thread only; the inbox is behind a lock, `load`, `heartbeat` and `thread` are atomic.

    private enum Message: Sendable {
        case adopt(Request, SocketAddress, BaseServer, EventModel)
        case serve(ReactorServeLoop)
        case cutShort(BaseServer)
        case stop
    }

    /// Messages for the reactor's thread; `closed` once that thread has ended, after which a message is turned away
    /// on the sender's thread (``turnAway(_:)``).
    private struct Inbox: Sendable {
        var messages: [Message] = []
        var closed = false
    }

    /// Its index in the pool, for messages.
    let index: Int
    private let poll: EventPoll
    private let wakeup: WakeupEvent
    private let inbox = ConditionLock(Inbox())
    private let finished = ConditionLock(false)
    private let logger: Logger
    /// Connections held now (read by the pool to choose the least loaded reactor).
    let load = Atomic<Int>(0)
    /// The share of the last ``ReactorBusyWindow`` the thread spent serving (outside `epoll_wait`), in thousandths.
    private let busyPermille = Atomic<Int>(0)
    /// The reactor's thread (`pthread_self()` there), 0 until it runs.
    private let thread = Atomic<UInt>(0)
    /// The monotonic time (µs) at which the thread last completed a pass of its loop: every wake-up (readiness, a
    /// message, a deadline) ends with a pass, so a reactor stuck in a handler stops it. Set at creation.
    let heartbeat = Atomic<UInt64>(MonotonicClock.microseconds())

    private var connections = EventConnectionTable<EventConnection>()
    /// The serve loops run here (a few: one per server at most).
    private var serveLoops: [ReactorServeLoop] = []
    private var deadlines = EventDeadlines()
    private var nextToken: UInt64 = 1
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// When the thread's last wait for readiness returned: connections stamp their reads and writes with it, one clock
    /// read per pass instead of two per request.
    private(set) var passStarted = MonotonicClock.seconds()
    /// The wake-up eventfd's token; the serve loops' count from 1 (connections' are ``EventConnectionTable``'s).
    private static let wakeupToken: UInt64 = 0
    /// Bytes read from one connection per readiness, so that one fast client cannot starve the others.
    static let readSize = 64 * 1024

    init(index: Int, logger: Logger) throws(SocketError) {
        self.index = index
        self.logger = logger
        poll = try EventPoll()
        wakeup = try WakeupEvent()
        try poll.add(wakeup.fileDescriptor, interest: .readable, token: Self.wakeupToken)
        readBuffer = .allocate(byteCount: Self.readSize, alignment: 16)
    }

    deinit { readBuffer.deallocate() }

    // MARK: - From other threads

    /// Starts the reactor's thread.
    func start() throws(SocketError) {
        try DetachedThread.start { [self] in run() }
    }

    /// Takes over an accepted connection: the reactor watches it, creates its handler with the model's factory and
    /// serves it until it ends.
    func adopt(_ request: Request, clientAddress: SocketAddress, server: BaseServer, model: EventModel) {
        load.add(1, ordering: .relaxed)
        send(.adopt(request, clientAddress, server, model))
    }

    /// The share of its last ``ReactorBusyWindow`` (0 to 1) that the thread spent serving rather than waiting for
    /// readiness; a reactor that has waited since then still shows it until its next pass.
    var busyFraction: Double { Double(busyPermille.load(ordering: .relaxed)) / 1000 }

    /// Whether the caller runs on this reactor's thread.
    var isCurrentThread: Bool { thread.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Runs a server's serve loop from now on, until a shutdown is requested (or the reactor stops).
    func run(_ loop: ReactorServeLoop) {
        send(.serve(loop))
    }

    /// Takes over a connection a serve loop of this reactor accepted: opens it at once. On this reactor's thread only.
    func adoptHere(_ request: Request, clientAddress: SocketAddress, server: BaseServer, model: EventModel) {
        load.add(1, ordering: .relaxed)
        open(request, clientAddress: clientAddress, server: server, model: model)
    }

    /// Closes every connection of `server` now (``EventCloseReason/cutShort``).
    func cutShort(server: BaseServer) {
        send(.cutShort(server))
    }

    /// Makes the thread complete a pass of its loop (and so stamp its ``heartbeat``) now, even when it is idle; a
    /// reactor stuck in a handler passes only once the handler returns.
    func wake() {
        wakeup.signal()
    }

    /// Closes every connection and ends the thread; returns once it has ended.
    func stop() {
        send(.stop)
        finished.wait(until: { $0 }) { _, _ in }
    }

    private func send(_ message: Message) {
        let delivery = inbox.withLock { inbox -> Bool? in
            guard !inbox.closed else { return nil }
            inbox.messages.append(message)
            return inbox.messages.count == 1
        }
        switch delivery {
        case true?: wakeup.signal()
        case false?: break
        case nil: turnAway(message)
        }
    }

    /// A message that came after the thread ended: a connection is closed unserved, a serve loop ends at once.
    private func turnAway(_ message: Message) {
        switch message {
        case .adopt(let request, let client, let server, let model):
            load.subtract(1, ordering: .relaxed)
            server.closeRequest(request)
            server.endRequest(request, clientAddress: client)
            model.requestEnded(server: server)
        case .serve(let loop):
            loop.end()
        case .cutShort, .stop:
            break
        }
    }

    // MARK: - The reactor's thread

    private func run() {
        thread.store(UInt(pthread_self()), ordering: .relaxed)
        var events = EventPoll.Events()
        var running = true
        var readyLoops: [ReactorServeLoop] = []
        var busyWindow = ReactorBusyWindow(now: MonotonicClock.seconds())
        while running {
            // Every pass: no array built here.
            let due = serveLoops.reduce(deadlines.earliest) { earliest, loop in min(earliest ?? loop.due, loop.due) }
            let waitBegan = MonotonicClock.seconds()
            let timeout = due.map { max(0, $0 - waitBegan) }
            do {
                try poll.wait(into: &events, timeout: timeout)
            } catch {
                logger.error("event reactor \(index): \(error)")
                usleep(10_000)
                continue
            }
            let waitEnded = MonotonicClock.seconds()
            passStarted = waitEnded
            for event in 0..<events.count {
                let (token, mask) = events[event]
                if token == Self.wakeupToken {
                    running = takeMessages()
                } else if let connection = connections[token] {
                    serve(connection, mask)
                } else if let loop = serveLoops.first(where: { $0.wakeupToken == token || $0.socketToken == token }),
                    !readyLoops.contains(where: { $0 === loop })
                {
                    readyLoops.append(loop)
                }
            }
            let now = MonotonicClock.seconds()
            // Before the serve loops pass: what they accept is placed by how busy the reactor was up to now.
            if let busy = busyWindow.recordWait(from: waitBegan, to: waitEnded, workedUntil: now) {
                busyPermille.store(Int(busy * 1000), ordering: .relaxed)
            }
            // By the time the wait returned: what was ready by then was read first, so a connection whose input waited
            // through a long pass is not idle.
            fireDeadlines(now: waitEnded)
            if !serveLoops.isEmpty {
                for loop in serveLoops where loop.due <= now && !readyLoops.contains(where: { $0 === loop }) {
                    readyLoops.append(loop)
                }
                for loop in readyLoops { pass(loop) }
                readyLoops.removeAll(keepingCapacity: true)
            }
            heartbeat.store(UInt64(now * 1e6), ordering: .relaxed)
        }
        for loop in serveLoops { release(loop) }
        for connection in connections.all { finish(connection, .cutShort) }
        deadlines.removeAll()
        let left = inbox.withLock { inbox in
            inbox.closed = true
            defer { inbox.messages.removeAll() }
            return inbox.messages
        }
        for message in left { turnAway(message) }
        finished.withLock(notify: .all) { $0 = true }
    }

    /// Handles the inbox; returns false once told to stop.
    private func takeMessages() -> Bool {
        wakeup.drain()
        let messages = inbox.withLock { inbox in
            defer { inbox.messages.removeAll(keepingCapacity: true) }
            return inbox.messages
        }
        var running = true
        for message in messages {
            switch message {
            case .adopt(let request, let client, let server, let model):
                if running {
                    open(request, clientAddress: client, server: server, model: model)
                } else {
                    load.subtract(1, ordering: .relaxed)
                    server.shutdownRequest(request)
                    server.endRequest(request, clientAddress: client)
                    model.requestEnded(server: server)
                }
            case .serve(let loop):
                if running { attach(loop) } else { loop.end() }
            case .cutShort(let server):
                for connection in connections.all where connection.server === server {
                    finish(connection, .cutShort)
                }
            case .stop:
                running = false
            }
        }
        return running
    }

    private func open(_ request: Request, clientAddress: SocketAddress, server: BaseServer, model: EventModel) {
        guard let socket = request.connection else { return }
        let now = MonotonicClock.seconds()
        let connection = connections.insert { token in
            EventConnection(
                token: token, request: request, socket: socket, clientAddress: clientAddress, server: server,
                model: model, reactor: self, now: now)
        }
        do {
            try poll.add(socket.fileDescriptor, interest: .readable, token: connection.token)
        } catch {
            server.handleError(request, clientAddress: clientAddress, error: error)
            finish(connection, .failed(error))
            return
        }
        let handler = model.makeHandler(connection)
        connection.handler = handler
        handler.opened(connection)
        settle(connection)
    }

    // MARK: - Serve loops

    /// Starts running a server's serve loop: watches its wake-up descriptor, and its socket while it takes requests.
    private func attach(_ loop: ReactorServeLoop) {
        let server = loop.server
        server.loopMoved(to: pthread_self())
        loop.wakeupToken = nextToken
        loop.socketToken = nextToken + 1
        nextToken += 2
        do {
            try poll.add(server.readinessDescriptors[0], interest: .readable, token: loop.wakeupToken)
        } catch {
            logger.error("event reactor \(index): cannot run the serve loop of \(server.serverAddress): \(error)")
            loop.end()
            return
        }
        serveLoops.append(loop)
        loop.lastServiceActions = MonotonicClock.seconds()
        pass(loop)
    }

    /// One pass of a serve loop, as ``BaseServer/serveForever(pollInterval:)`` makes it: takes what is queued and runs
    /// the service actions (at least every poll interval), then watches the socket or not as the server now takes
    /// requests or not, and sets when the loop must pass again. Lets the server go once a shutdown is requested.
    private func pass(_ loop: ReactorServeLoop) {
        let server = loop.server
        guard !server.isShutdownRequested else {
            release(loop)
            return
        }
        server.serveReadyRequests()
        server.serviceActions()
        guard !server.isShutdownRequested else {
            release(loop)
            return
        }
        let now = MonotonicClock.seconds()
        loop.lastServiceActions = now
        let accepting = server.isAccepting
        if accepting != loop.watchesSocket {
            do {
                if accepting {
                    try poll.add(server.fileno, interest: .readable, token: loop.socketToken)
                } else {
                    try poll.remove(server.fileno)
                }
                loop.watchesSocket = accepting
            } catch {
                server.handleError(nil, clientAddress: nil, error: error)
            }
        }
        // A worker that crashed wakes nobody, as in serveForever: look again soon while the server needs it.
        var due = now + (server.needsPolling ? min(loop.pollInterval, 0.05) : loop.pollInterval)
        if let wakeup = server.nextWakeup { due = min(due, max(now, wakeup)) }
        loop.due = due
    }

    /// Stops running a serve loop: unwatches the server's descriptors and lets its `serveForever` return.
    private func release(_ loop: ReactorServeLoop) {
        let descriptors = loop.server.readinessDescriptors
        try? poll.remove(descriptors[0])
        if loop.watchesSocket { try? poll.remove(loop.server.fileno) }
        loop.watchesSocket = false
        serveLoops.removeAll { $0 === loop }
        loop.end()
    }

    // MARK: - Connections

    /// Reads (once, at most ``readSize`` bytes) and writes what the readiness allows.
    private func serve(_ connection: EventConnection, _ mask: EventMask) {
        if !mask.isDisjoint(with: [.writable, .hangup, .error]) { connection.flush() }
        if connection.interest.contains(.readable) && !mask.isDisjoint(with: [.readable, .hangup, .error]),
            connection.failure == nil
        {
            read(connection)
        } else if !mask.isDisjoint(with: [.hangup, .error]) && connection.failure == nil {
            // Reported whatever the interest, and again on every wait while it lasts: a connection that is not
            // read (its input ended, or its output is over the limit) and has nothing left to send ends here.
            connection.failure = Self.pendingError(of: connection.socket)
        }
        settle(connection)
    }

    /// The error a hung-up socket reports (SO_ERROR), or EPIPE when it has none: the peer is gone both ways.
    private static func pendingError(of socket: Socket) -> SocketError {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(socket.fileDescriptor, SOL_SOCKET, SO_ERROR, &code, &length)
        return SocketError("epoll_wait", errno: code == 0 ? EPIPE : code, subject: "\(socket) (hung up)")
    }

    private func read(_ connection: EventConnection) {
        let fd = connection.socket.fileDescriptor
        while true {
            // MSG_DONTWAIT: the socket stays in the mode it was accepted in (an fcntl pair per connection saved).
            let count = recv(fd, readBuffer.baseAddress, readBuffer.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                connection.bytesReceived += count
                connection.lastActivity = passStarted
                connection.handler?.received(UnsafeRawBufferPointer(rebasing: readBuffer[..<count]), on: connection)
                return
            }
            if count == 0 {
                connection.inputEnded = true
                connection.handler?.inputEnded(on: connection)
                return
            }
            let code = errno
            if code == EINTR { continue }
            if code != EAGAIN && code != EWOULDBLOCK {
                connection.failure = SocketError("recv", errno: code, subject: connection.socket.description)
            }
            return
        }
    }

    /// After anything happened on a connection: ends it if it failed or closed with its output sent, else watches it
    /// for what it needs now (input unless it is closing, ended or has too much output waiting; room to write while
    /// output waits) and schedules its next deadline.
    private func settle(_ connection: EventConnection) {
        if let failure = connection.failure {
            finish(connection, .failed(failure))
            return
        }
        if connection.closeRequested && connection.pendingOutput == 0 {
            finish(connection, .closed)
            return
        }
        var wanted: EventMask = []
        if !connection.closeRequested && !connection.inputEnded && connection.pendingOutput <= connection.outputLimit {
            wanted.insert(.readable)
        }
        if connection.pendingOutput > 0 { wanted.insert(.writable) }
        if wanted != connection.interest {
            do {
                try poll.modify(connection.socket.fileDescriptor, interest: wanted, token: connection.token)
                connection.interest = wanted
            } catch {
                finish(connection, .failed(error))
                return
            }
        }
        scheduleDeadline(of: connection)
    }

    /// Makes sure the reactor looks at `connection` again by its next due time.
    func scheduleDeadline(of connection: EventConnection) {
        guard let next = connection.nextDue, connections[connection.token] != nil else { return }
        if let scheduled = connection.scheduledDue, scheduled <= next { return }
        connection.scheduledDue = next
        deadlines.insert(due: next, token: connection.token)
    }

    /// Ends the connections idle at `now` and calls the handlers whose deadline has come; `now` is when the pass's wait
    /// returned, the time connections stamp their activity with, so one judged not idle is not due again this pass.
    private func fireDeadlines(now: Double) {
        while let (due, token) = deadlines.popDue(now: now) {
            guard let connection = connections[token], connection.scheduledDue == due else { continue }
            connection.scheduledDue = nil
            if let idle = connection.idleTimeout, now >= connection.lastActivity + idle {
                finish(connection, .idle)
                continue
            }
            if let deadline = connection.deadline, now >= deadline {
                connection.deadline = nil
                connection.handler?.deadlineReached(on: connection)
            }
            settle(connection)
        }
    }

    /// Ends a connection: tells the handler, closes the socket (``BaseServer/closeRequest(_:)``: no other process
    /// holds a copy that a shutdown would have to reach past, and closing it takes it out of the epoll set), counts
    /// its bytes in the server's ``BaseServer/metrics``, then tells the server
    /// (``BaseServer/endRequest(_:clientAddress:)``) and the model.
    private func finish(_ connection: EventConnection, _ reason: EventCloseReason) {
        guard connections.remove(connection.token) != nil else { return }
        load.subtract(1, ordering: .relaxed)
        let server = connection.server
        let descriptor = connection.socket.fileDescriptor
        connection.closeRequested = true
        let handler = connection.handler
        connection.handler = nil
        handler?.connectionClosed(connection, reason: reason)
        server.closeRequest(connection.request)
        // A server whose closeRequest keeps the socket open must not leave it in the set, where a hang-up would wake
        // the reactor on every wait.
        if connection.socket.fileDescriptor >= 0 && descriptor >= 0 { try? poll.remove(descriptor) }
        let metrics = server.metrics
        metrics.receivedBytes.increment(by: connection.bytesReceived)
        metrics.sentBytes.increment(by: connection.bytesSent)
        server.endRequest(connection.request, clientAddress: connection.clientAddress)
        connection.model.requestEnded(server: server)
    }
}
