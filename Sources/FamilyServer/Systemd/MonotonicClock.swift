import Glibc

/// Microseconds on CLOCK_MONOTONIC: the clock of systemd's `MONOTONIC_USEC=` and of ``Watchdog``.
public func monotonicMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
}
