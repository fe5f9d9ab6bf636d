/// How busy a reactor's thread was: the share of a window of time (at least ``length`` seconds) that it spent
/// outside `epoll_wait`, serving. The thread records each of its waits; at the end of each window the fraction is
/// ready for others to read (``EventReactor/busyFraction``), where the pool uses it to place connections
/// (``EventReactors``).
struct ReactorBusyWindow {
    /// The shortest window, in seconds.
    static let length = 0.1

    private var start: Double
    private var waited = 0.0

    /// Starts the first window at `now` (monotonic seconds).
    init(now: Double) {
        start = now
    }

    /// Records a wait from `began` to `ended`, and the work after it up to `now` (monotonic seconds); returns the busy
    /// fraction (0 to 1) of the window that `now` closes, or `nil` while the window is still open.
    mutating func recordWait(from began: Double, to ended: Double, workedUntil now: Double) -> Double? {
        waited += max(0, ended - max(began, start))
        let elapsed = now - start
        guard elapsed >= Self.length else { return nil }
        let busy = min(1, max(0, 1 - waited / elapsed))
        start = now
        waited = 0
        return busy
    }
}
