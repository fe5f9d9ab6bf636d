import Glibc

/// A pthread that nobody joins.
public enum DetachedThread {
    /// Starts `body` on a new detached pthread.
    ///
    /// pthreads rather than Foundation's `Thread`: no Foundation on the request path, and a small
    /// stack (256 KiB) so that thousands of idle connections stay cheap.
    /// - Throws: ``SocketError`` for `pthread_create` (EAGAIN when the process is out of threads).
    public static func start(stackSize: Int = 256 * 1024, _ body: @escaping @Sendable () -> Void) throws(SocketError) {
        final class Box: Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, stackSize)
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        if status != 0 {
            Unmanaged<Box>.fromOpaque(context).release()
            throw SocketError("pthread_create", errno: status)
        }
    }
}
