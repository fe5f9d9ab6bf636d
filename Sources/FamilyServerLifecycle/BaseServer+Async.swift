import FamilyServer

/// The async forms of serving and stopping, for any server.
extension BaseServer {
    /// Serves requests until `BaseServer.shutdown(wait:)` is called or the calling
    /// task is cancelled, without holding a thread of the cooperative pool: the blocking
    /// `BaseServer.serveForever(pollInterval:)` runs on a thread of its own.
    ///
    /// It returns once the serve loop has returned. It neither closes the socket nor waits for
    /// the requests in flight: ``shutdownAndDrain()`` does that.
    ///
    /// - Parameter pollInterval: how often `BaseServer.serviceActions()` runs while
    ///   the server is idle, as for `serveForever`.
    /// - Throws: `SocketError` for `pthread_create` when the serving thread could
    ///   not be started.
    public func serve(pollInterval: Double = 0.5) async throws {
        // The serial model runs each request on the serving thread: give it a full-size stack.
        try await withTaskCancellationHandler {
            try await BlockingCall.run(stackSize: 8 << 20) { self.serveForever(pollInterval: pollInterval) }
        } onCancel: {
            // Asked before the loop started, the request still stops it: the loop then returns at once.
            self.shutdown(wait: false)
        }
    }

    /// Stops the serve loop, closes the server socket and waits for the requests in flight, on a
    /// thread of its own: the async form of `shutdown()` followed by `serverClose()`.
    ///
    /// From the moment the socket is closed, new connections are refused (a Unix socket file the
    /// server created is removed). The wait for the requests in flight is the processing model's
    /// close: the threading model waits for its running requests (`blockOnClose`, unless
    /// `daemonThreads`), the forking model for its children, the serial model's one request ended
    /// with the loop. Idempotent, like `serverClose()`.
    ///
    /// - Throws: `SocketError` for `pthread_create` when the thread could not be
    ///   started; the server is then left as it was.
    public func shutdownAndDrain() async throws {
        try await BlockingCall.run {
            self.shutdown(wait: true)
            self.serverClose()
        }
    }
}
