import Glibc

/// Runs the detached daemon on a thread of its own, because the main thread of a forked process
/// cannot safely share the Swift runtime's locks with other threads.
///
/// The runtime's locks (the `once` behind lazy metadata, among others) are priority-inheritance
/// futexes that record their owner's thread id, which each thread caches on first use. `fork`
/// copies that cache: the forked main thread goes on taking locks under its parent's id, and
/// when another thread contends, neither can unlock nor lock (FUTEX_UNLOCK_PI fails with EPERM
/// for the wrong owner): both spin at 100 % CPU for ever. A `--daemon` serverd (forked twice)
/// hung that way at stop, when its main thread and a worker first needed the same metadata
/// together. A thread started after the fork caches its own, right id; the main thread only
/// waits for it.
enum FreshThread {
    /// Runs `body` on a new thread, waits for it to end and returns its exit status or throws its
    /// error.
    static func run(_ body: @escaping () throws(DaemonError) -> Int32) throws(DaemonError) -> Int32 {
        let job = Job(body)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeUnretainedValue().execute()
            return nil
        }, Unmanaged.passUnretained(job).toOpaque())
        guard started == 0 else {
            throw DaemonError(.osError, "cannot start the daemon's thread: pthread_create: \(String(cString: strerror(started)))", errno: started)
        }
        pthread_join(thread, nil)
        if let failure = job.failure { throw failure }
        return job.status
    }

    /// The body and, once it ran, its outcome; touched by one thread at a time (before the start
    /// and after the join by the caller, in between by the new thread).
    private final class Job: @unchecked Sendable {
        let body: () throws(DaemonError) -> Int32
        var status: Int32 = 0
        var failure: DaemonError?

        init(_ body: @escaping () throws(DaemonError) -> Int32) {
            self.body = body
        }

        func execute() {
            do {
                status = try body()
            } catch {
                failure = error
            }
        }
    }
}
