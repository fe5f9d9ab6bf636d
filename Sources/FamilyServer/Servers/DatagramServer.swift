import Glibc
import Logging

/// A datagram server for any family: UDP over IPv4 or IPv6, or a Unix datagram socket. Each
/// request is one datagram; replies go back from the same socket.
///
/// The serve loop takes what is queued in batches: one `recvmmsg` receives up to
/// ``batchSize`` datagrams into buffers the server reuses, and ``getRequest()`` hands them out one
/// by one, each verified, processed and handled on its own as before. On the serial model the
/// replies of a batch (``Datagram/sendReply(_:to:)``) wait until its last datagram was handled
/// and go out together by one `sendmmsg` (``requestsTaken()``); a reply the kernel refuses fails
/// alone (``handleError(_:clientAddress:error:)``) and each reply sent is reported to
/// ``replySent(size:to:)``. On the threading and forking models each handler sends its reply
/// itself.
open class DatagramServer: BaseServer, @unchecked Sendable {
    /// The largest datagram received whole; a longer one is truncated to this size.
    public var maxPacketSize = 65536
    /// The most datagrams one wake-up receives at once (1 up to
    /// ``DatagramReceiveBatch/maximumCapacity``); never more than ``BaseServer/requestAllowance``
    /// or the processing model's free capacity allow.
    public var batchSize = 32
    /// Replies dropped because they could have reached another socket than the sender's
    /// (``ReplyRefusal``), counted and logged at most every 10 s.
    public let droppedReplies = ThrottledWarning()

    // The serving thread's alone: the batch being handed out, and the replies waiting to be sent.
    private var received: DatagramReceiveBatch?
    private var nextReceived = 0
    /// Set when the last `recvmmsg` received fewer datagrams than it asked for: the queue was empty
    /// then, so the next ``getRequest()`` ends the wake-up without asking the kernel again.
    private var queueWasDrained = false
    private lazy var replies = DatagramReplyBatch(capacity: DatagramReceiveBatch.maximumCapacity) {
        [unowned self] sender, size, error in
        if let error {
            handleError(nil, clientAddress: sender, error: error)
        } else {
            replySent(size: size, to: sender)
        }
    }

    /// Creates and (unless `bindAndActivate` is false) binds a datagram `address`.
    public override init(
        address: SocketAddress, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer"), bindAndActivate: Bool = true
    ) throws {
        precondition(address.transport == .datagram, "DatagramServer needs a datagram address, not \(address)")
        try super.init(address: address, handler: handler, model: model, logger: logger, bindAndActivate: false)
        try askForCredentials()
        if bindAndActivate { try self.bindAndActivate() }
    }

    /// Adopts a bound datagram socket (socket activation, `fd:N`); binding is skipped.
    public override init(
        adopting socket: Socket, handler: BaseRequestHandler.Type, model: ProcessingModel = SerialModel(),
        logger: Logger = Logger(label: "FamilyServer")
    ) throws {
        precondition(socket.transport == .datagram, "DatagramServer needs a datagram socket")
        try super.init(adopting: socket, handler: handler, model: model, logger: logger)
        try askForCredentials()
    }

    /// Every Unix datagram carries its sender's credentials (SO_PASSCRED), which
    /// ``Datagram/credentials`` holds and a reply is checked against (``UnixReplyTarget``).
    private func askForCredentials() throws {
        guard socket.family == AF_UNIX else { return }
        do {
            try socket.enablePassCredentials()
        } catch {
            serverClose()
            throw error
        }
    }

    /// Hands out the next datagram of the batch received last; once that is used up, sends the
    /// replies waiting and receives the next batch (`recvmmsg`). Returns `nil` when none is queued.
    open override func getRequest() throws -> (Request, SocketAddress)? {
        if nextReceived >= received?.count ?? 0 {
            if queueWasDrained {
                queueWasDrained = false
                return nil
            }
            sendWaitingReplies()
            let limit = min(batchSize, requestAllowance ?? .max, freeCapacity)
            guard limit > 0 else { return nil }
            let batch = receiveBatch()
            nextReceived = 0
            let count = try socket.receiveDatagrams(into: batch, limit: limit)
            guard count > 0 else { return nil }
            queueWasDrained = count < limit
            if processingModel.runsRequestsOnServingThread && answerInPlace(batch, replies: replies) {
                // Answered already: this wake-up ends here, and the loop sends the replies (requestsTaken).
                nextReceived = count
                queueWasDrained = false
                return nil
            }
        }
        guard let batch = received else { return nil }
        let index = nextReceived
        nextReceived += 1
        var datagram = Datagram(payload: batch.payload(at: index), socket: socket, credentials: batch.credentials(at: index))
        if processingModel.runsRequestsOnServingThread { datagram.replyBatch = replies }
        return (.datagram(datagram), batch.sender(at: index, transport: socket.transport))
    }

    /// Answers a batch of datagrams where they lie, without a ``Request`` or handler for each: for a server whose
    /// answers are computed on the serving thread and that can skip the per-request steps for a whole batch. Called by
    /// ``getRequest()`` on the serving thread, under a model that runs requests there (serial), right after `batch`
    /// was received; it may add replies to `replies` (sent by one `sendmmsg` once the wake-up is over, each reported to
    /// ``replySent(size:to:)`` or ``handleError(_:clientAddress:error:)``), and counts what it took in ``BaseServer/metrics``
    /// (requests, refused, received bytes) itself.
    /// - Returns: `true` when it answered the whole batch; `false` (the default) to have its datagrams handed out one
    ///   by one as requests, through every step of the template.
    open func answerInPlace(_ batch: DatagramReceiveBatch, replies: DatagramReplyBatch) -> Bool { false }

    /// Datagrams received and not yet handed out by ``getRequest()``.
    open override var hasReceivedRequests: Bool { nextReceived < received?.count ?? 0 }

    /// Sends the replies the batch's handlers left waiting.
    open override func requestsTaken() {
        super.requestsTaken()
        sendWaitingReplies()
    }

    /// Called for each reply sent, with its size and the sender it answered: adds the size to
    /// ``BaseServer/metrics``. Override to count more (call `super`).
    open func replySent(size: Int, to sender: SocketAddress) {
        metrics.sentBytes.increment(by: size)
    }

    private func sendWaitingReplies() {
        if replies.count > 0 { socket.sendDatagrams(replies) }
    }

    /// The receive batch, made anew when ``batchSize`` or ``maxPacketSize`` changed.
    private func receiveBatch() -> DatagramReceiveBatch {
        let capacity = min(max(batchSize, 1), DatagramReceiveBatch.maximumCapacity)
        if let batch = received, batch.capacity == capacity, batch.maxPacketSize == maxPacketSize { return batch }
        let batch = DatagramReceiveBatch(capacity: capacity, maxPacketSize: maxPacketSize)
        received = batch
        return batch
    }

    /// How many more requests the processing model takes now.
    private var freeCapacity: Int {
        guard let capacity = processingModel.capacity else { return .max }
        return max(0, capacity - processingModel.activeRequests)
    }

    /// Reaps the processing model's workers and, on a Unix socket, lets go of what the reply
    /// checks kept for senders that went quiet (``UnixReplyTarget/releaseIdle(after:)``).
    open override func serviceActions() {
        super.serviceActions()
        if socket.family == AF_UNIX { UnixReplyTarget.releaseIdle() }
    }

    /// A datagram has no connection to shut down: calls ``BaseServer/closeRequest(_:)`` (Python's
    /// `UDPServer.shutdown_request`).
    open override func shutdownRequest(_ request: Request) {
        closeRequest(request)
    }

    /// A datagram needs no closing (Python's `UDPServer.close_request`). Does nothing.
    open override func closeRequest(_ request: Request) {}

    /// Counts and logs (throttled) a dropped reply; anything else goes to `super`.
    open override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        guard let refusal = error as? ReplyRefusal else {
            super.handleError(request, clientAddress: clientAddress, error: error)
            return
        }
        let sender = clientAddress.map { " to \($0)" } ?? ""
        droppedReplies.record(logger, "\(serverAddress): reply\(sender) dropped: \(refusal.reason)")
    }
}

/// A datagram server for UDP over IPv4 or IPv6 (Python's `UDPServer`).
open class UDPServer: DatagramServer, @unchecked Sendable {}

/// A datagram server on a Unix socket (Python's `UnixDatagramServer`).
open class UnixDatagramServer: DatagramServer, @unchecked Sendable {}
