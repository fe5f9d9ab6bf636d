/// The documented range of every numeric option, shared by the command line (exit 64 outside it), the configuration
/// file (exit 78), `--help` and serverd(8).
///
/// The bounds keep every use of a value free of overflow: a count plus one, a byte count divided by a rate, a number
/// of seconds as milliseconds in an `Int32` or as microseconds in a `timeval`.
enum OptionRange {
    /// `max-connections`: connections at once per listener.
    static let maxConnections: ClosedRange<Int> = 1...1_000_000
    /// `max-per-source`: simultaneous connections per source.
    static let maxPerSource: ClosedRange<Int> = 1...1_000_000
    /// `max-rate`: new connections (datagrams) per second per listener, 0 for unlimited.
    static let maxRate: ClosedRange<Int> = 0...1_000_000
    /// `max-rate-per-source`: new connections (datagrams) per second from one source, 0 for unlimited.
    static let maxRatePerSource: ClosedRange<Int> = 0...1_000_000
    /// `max-line`: bytes before the LF, up to 1 GiB.
    static let maxLine: ClosedRange<Int> = 1...(1 << 30)
    /// `min-rate`: average inbound bytes per second, 0 for no minimum, up to 1 GiB/s.
    static let minRate: ClosedRange<Int> = 0...(1 << 30)
    /// `reply-rate-per-source`: datagram replies per second to one source prefix, 0 for unlimited.
    static let replyRatePerSource: ClosedRange<Int> = 0...1_000_000
    /// `source-prefix-v4`: the leading bits of an IPv4 address that make one source.
    static let sourcePrefixV4: ClosedRange<Int> = 1...32
    /// `source-prefix-v6`: the leading bits of an IPv6 address that make one source.
    static let sourcePrefixV6: ClosedRange<Int> = 1...128
    /// `workers`: the event model's reactor threads.
    static let workers: ClosedRange<Int> = 1...256
    /// `prefork`: the forking model's pre-forked workers per stream listener, 0 for none.
    static let prefork: ClosedRange<Int> = 0...256
    /// `wait-start-limit`: starts of a wait-mode program within 10 s before the listener pauses.
    static let waitStartLimit: ClosedRange<Int> = 1...1000
    /// `rlimit-nofile`: open descriptors (the kernel's `fs.nr_open` default is the most a limit can be).
    static let rlimitNofile: ClosedRange<Int> = 0...1_048_576
    /// `rlimit-as`: bytes of address space, 1 MiB to 1 TiB.
    static let rlimitAs: ClosedRange<Int> = (1 << 20)...(1 << 40)
    /// `rlimit-cpu`: seconds of CPU time, up to a year.
    static let rlimitCpu: ClosedRange<Int> = 1...31_536_000
    /// `rlimit-nproc`: processes of the user (the kernel's `pid_max` at most).
    static let rlimitNproc: ClosedRange<Int> = 1...4_194_304
    /// Every timeout (`idle-timeout`, `request-timeout`, `drain-timeout`), in seconds: 0 to one day.
    static let seconds: ClosedRange<Double> = 0...86_400

    /// A range as the messages and the help write it: `1 to 1000000`.
    static func text(_ range: ClosedRange<Int>) -> String {
        "\(range.lowerBound) to \(range.upperBound)"
    }

    /// The range of seconds as the messages and the help write it: `0 to 86400`.
    static var secondsText: String {
        "\(Int(seconds.lowerBound)) to \(Int(seconds.upperBound))"
    }
}
