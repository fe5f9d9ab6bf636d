import FamilyServer

/// Runs blocking work (a serve loop, a drain, a `recv` that must wait) on a thread of its own, so that
/// it never holds a thread of Swift concurrency's cooperative pool.
enum BlockingCall {
    /// Runs `body` on a new detached thread and returns what it returned, or throws what it threw.
    ///
    /// - Throws: what `body` throws, or ``SocketError`` for `pthread_create` when no thread could be
    ///   started (then `body` never runs).
    static func run<T: Sendable>(
        stackSize: Int = 256 * 1024, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try DetachedThread.start(stackSize: stackSize) {
                    continuation.resume(with: Result { try body() })
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
