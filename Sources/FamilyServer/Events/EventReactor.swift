import Glibc
import Logging
import Synchronization

/// One thread and one epoll set that serve many connections: reads what is ready, calls the handlers, sends what they
/// wrote as the clients take it, and closes connections whose time is up.
///
/// Other threads talk to it only through its inbox (``adopt(_:clientAddress:server:model:)``, ``cutShort(server:)``,
/// ``stop()``) and its wake-up eventfd (``wake()``), and read its ``heartbeat`` and ``load``. Everything else — the
/// connections, the deadlines, the read buffer — belongs to the reactor's thread alone.
final class EventReactor: @unchecked Sendable {
    // @unchecked: `connections`, `deadlines`, `nextToken` and `readBuffer` are used on the reactor's thread only; the
    // inbox is behind a lock, `load` and `heartbeat` are atomic.

    private enum Message: Sendable {
        case adopt(Request, SocketAddress, BaseServer, EventModel)
        case cutShort(BaseServer)
        case stop
    }

    /// Its index in the pool, for messages.
    let index: Int
    private let poll: EventPoll
    private let wakeup: WakeupEvent
    private let inbox = ConditionLock<[Message]>([])
    private let finished = ConditionLock(false)
    private let logger: Logger
    /// Connections held now (read by the pool to choose the least loaded reactor).
    let load = Atomic<Int>(0)
    /// The monotonic time (µs) at which the thread last completed a pass of its loop: every wake-up (readiness, a
    /// message, a deadline) ends with a pass, so a reactor stuck in a handler stops it. Set at creation.
    let heartbeat = Atomic<UInt64>(MonotonicClock.microseconds())

    private var connections: [UInt64: EventConnection] = [:]
    private var deadlines = EventDeadlines()
    private var nextToken: UInt64 = 1
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// The wake-up eventfd's token; connections count from 1.
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
        let wasEmpty = inbox.withLock { messages in
            messages.append(message)
            return messages.count == 1
        }
        if wasEmpty { wakeup.signal() }
    }

    // MARK: - The reactor's thread

    private func run() {
        var events = EventPoll.Events()
        var running = true
        while running {
            let timeout = deadlines.earliest.map { max(0, $0 - MonotonicClock.seconds()) }
            do {
                try poll.wait(into: &events, timeout: timeout)
            } catch {
                logger.error("event reactor \(index): \(error)")
                usleep(10_000)
                continue
            }
            for event in 0..<events.count {
                let (token, mask) = events[event]
                if token == Self.wakeupToken {
                    running = takeMessages()
                } else if let connection = connections[token] {
                    serve(connection, mask)
                }
            }
            let now = MonotonicClock.seconds()
            fireDeadlines(now: now)
            heartbeat.store(UInt64(now * 1e6), ordering: .relaxed)
        }
        for connection in Array(connections.values) { finish(connection, .cutShort) }
        deadlines.removeAll()
        finished.withLock(notify: .all) { $0 = true }
    }

    /// Handles the inbox; returns false once told to stop.
    private func takeMessages() -> Bool {
        wakeup.drain()
        let messages = inbox.withLock { messages in
            defer { messages.removeAll(keepingCapacity: true) }
            return messages
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
            case .cutShort(let server):
                for connection in Array(connections.values) where connection.server === server {
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
        let token = nextToken
        nextToken += 1
        let connection = EventConnection(
            token: token, request: request, socket: socket, clientAddress: clientAddress, server: server,
            model: model, reactor: self, now: MonotonicClock.seconds())
        connections[token] = connection
        do {
            try poll.add(socket.fileDescriptor, interest: .readable, token: token)
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
                connection.lastActivity = MonotonicClock.seconds()
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
        guard connections.removeValue(forKey: connection.token) != nil else { return }
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
