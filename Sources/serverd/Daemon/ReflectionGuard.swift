import FamilyServer
import Logging

/// The rules that keep a UDP listener from being turned against serverd itself or against others
/// by datagrams with a forged source (BSD inetd's `check_loop` is the anchor):
///
/// - no reply to source port 0, which no socket can receive on;
/// - no reply to a source port that one of serverd's own UDP listeners serves on
///   (``OwnDatagramPorts``): serverd answering itself, or another serverd on the same port,
///   would ping-pong for ever;
/// - no reply to a privileged source port (below 1024): the echo, discard, daytime, chargen and
///   time services of other hosts live there, and a reply to them starts a loop;
/// - at most ``ReplyRateLimiter/rate`` replies per second to one source prefix (``SourceKey``), except to
///   loopback sources: nobody without CAP_NET_RAW can forge those, and they are no third party.
///
/// Every drop is counted and logged, throttled per rule (``ThrottledWarning``). One datagram never
/// causes more than one reply: the services answer each datagram at most once.
struct ReflectionGuard: Sendable {
    /// The rule that dropped a datagram.
    enum Rule: CaseIterable, Sendable {
        case sourcePortZero, ownPort, privilegedPort, replyRate
    }

    /// The per-source reply budget; `nil` when unlimited.
    let limiter: ReplyRateLimiter?
    /// Datagrams dropped, per rule.
    let drops: [Rule: ThrottledWarning] = Dictionary(uniqueKeysWithValues: Rule.allCases.map { ($0, ThrottledWarning()) })
    /// serverd's own UDP ports, as this listener last saw them.
    private var ownPorts = OwnDatagramPorts.Copy()

    /// Creates the guard of a UDP listener that sends at most `rate` replies per second to one
    /// source (0: unlimited).
    init(replyRatePerSource rate: Int) {
        limiter = rate > 0 ? ReplyRateLimiter(rate: rate) : nil
    }

    /// The rule that forbids answering a datagram from `source`, and why, or `nil` when it may
    /// be answered.
    /// - Parameters:
    ///   - sender: The datagram's source address (UDP).
    ///   - source: The source's prefix (``SourceKey``), the key of its reply budget; asked for only
    ///     when the budget applies.
    mutating func refusal(for sender: SocketAddress, source: () -> SourceKey?) -> (rule: Rule, reason: String)? {
        guard let ip = sender.ip, let port = sender.port else { return nil }
        if port == 0 { return (.sourcePortZero, "source port 0") }
        if port < 1024 { return (.privilegedPort, "privileged source port \(port) (another host's service)") }
        if ownPorts.contains(port) { return (.ownPort, "source port \(port) is one of serverd's own UDP ports") }
        if let limiter, !ip.isLoopback, let key = source(), !limiter.allows(key) {
            return (.replyRate, "more than \(limiter.rate) replies per second to this source")
        }
        return nil
    }

    /// Counts a drop by `rule` and logs it, at most once per 10 s for each rule.
    func record(_ rule: Rule, logger: Logger, _ message: @autoclosure () -> String) {
        drops[rule]?.record(logger, message())
    }

    /// How many datagrams were dropped in all.
    var dropped: Int { drops.values.reduce(0) { $0 + $1.count } }
}
