import Glibc

/// CLOCK_MONOTONIC, the clock of every deadline in FamilyServer and of systemd's `MONOTONIC_USEC=` and watchdog.
public enum MonotonicClock {
    /// Seconds on CLOCK_MONOTONIC.
    public static func seconds() -> Double {
        let now = timespecNow()
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Microseconds on CLOCK_MONOTONIC.
    public static func microseconds() -> UInt64 {
        let now = timespecNow()
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    private static func timespecNow() -> timespec {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts
    }
}
