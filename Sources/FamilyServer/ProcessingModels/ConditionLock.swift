import Glibc

/// A mutex with a condition variable, guarding a value: `Synchronization.Mutex` has no way to
/// wait for a change, which shutdown and `blockOnClose` need.
///
/// It is also the lock for plain mutual exclusion here, instead of `Synchronization.Mutex`:
/// ThreadSanitizer sees a pthread mutex, but not the contended path of `Mutex` on Linux (a
/// FUTEX_LOCK_PI handoff inside the uninstrumented runtime), and so reports races on data that
/// `Mutex` correctly protects (`make test-tsan`).
public final class ConditionLock<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `mutex` held.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Value

    /// Creates the lock around an initial value.
    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Whom to wake after a change.
    public enum Notify: Sendable {
        /// Nobody.
        case none
        /// One waiter (a handoff to any one of several equal workers).
        case one
        /// Every waiter.
        case all
    }

    /// Runs `body` with the value locked, then wakes waiters as `notify` says.
    @discardableResult
    public func withLock<R>(notify: Notify = .none, _ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer {
            switch notify {
            case .none: break
            case .one: pthread_cond_signal(condition)
            case .all: pthread_cond_broadcast(condition)
            }
            pthread_mutex_unlock(mutex)
        }
        return try body(&value)
    }

    /// Waits until `predicate` holds, or `timeout` seconds pass (`nil`: no limit), then runs `body`
    /// with the value still locked.
    /// - Returns: what `body` returns, and whether the predicate held.
    public func wait<R>(
        until predicate: (Value) -> Bool, timeout: Double? = nil, then body: (inout Value, Bool) -> R
    ) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var deadline = timespec()
        if let timeout {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let total = Double(deadline.tv_nsec) / 1e9 + max(0, timeout)
            deadline.tv_sec += Int(total.rounded(.down))
            deadline.tv_nsec = Int((total - total.rounded(.down)) * 1e9)
        }
        while !predicate(value) {
            if timeout == nil {
                pthread_cond_wait(condition, mutex)
            } else if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT {
                return body(&value, predicate(value))
            }
        }
        return body(&value, true)
    }
}
