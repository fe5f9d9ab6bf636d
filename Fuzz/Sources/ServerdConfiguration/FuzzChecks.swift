// Not a daemon file (every other entry of this directory is a symbolic link into ../Sources/serverd): the checks
// fuzz-config and fuzz-options share, here so that both reach them with the daemon's internal types through
// `@testable import ServerdConfiguration`. Each returns `nil` when all is well, else what is wrong.
import FamilyServer

enum FuzzChecks {
    /// Whether parsing this `ADDRESS` would resolve a host name with getaddrinfo (a `tcp://` or `udp://` host that is
    /// neither bracketed, `*`, nor a numeric literal): the fuzzers skip such inputs, so that they never wait for DNS.
    static func wouldResolveHostName(_ address: String) -> Bool {
        guard address.hasPrefix("tcp://") || address.hasPrefix("udp://") else { return false }
        let rest = address.dropFirst(6)
        if rest.hasPrefix("[") { return false }
        guard let colon = rest.lastIndex(of: ":") else { return false }
        let host = rest[..<colon]
        if host.isEmpty || host == "*" || host.contains(":") { return false }
        return IPAddress(numeric: String(host)) == nil
    }

    /// Whether a `SERVICE@ADDRESS` text would resolve a host name.
    static func wouldResolveHostName(spec text: String) -> Bool {
        guard let at = text.firstIndex(of: "@") else { return false }
        return wouldResolveHostName(String(text[text.index(after: at)...]))
    }

    /// The values ``OptionTable/resolve(_:layers:)`` gave: each of an option of `scope`, of the case its kind
    /// produces, inside its documented range.
    static func problem(in values: [String: OptionValue], scope: Option.Scope) -> String? {
        for (name, value) in values {
            guard let option = OptionTable.named(name), option.scope == scope else {
                return "resolved a value for '\(name)', no option of this scope"
            }
            switch (option.kind, value) {
            case (.integer(let range), .integer(let number)):
                if !range.contains(number) { return "\(name) \(number) outside \(range)" }
            case (.seconds, .duration(let duration)):
                if let problem = problem(duration: duration, name) { return problem }
            case (.socketMode, .mode(let mode)):
                if mode > ValueSyntax.maximumSocketMode { return "\(name) 0o\(String(mode, radix: 8))" }
            case (.uids, .ids(let ids)), (.gids, .ids(let ids)):
                if ids.contains(UInt32.max) { return "\(name) holds (uid_t)-1" }
            case (.blocks, .blocks(let blocks)):
                for block in blocks { if let problem = problem(block: block) { return "\(name): \(problem)" } }
            case (.path, .text(let path)):
                if !path.hasPrefix("/") { return "\(name) '\(path)' is not absolute" }
            case (.name, .text(let text)):
                if text.isEmpty { return "\(name) is empty" }
            case (.program, .words(let words)):
                if words.first?.isEmpty ?? true { return "\(name) \(words) names no program" }
            case (.flag, .flag), (.onOff, .flag), (.model, .model), (.logLevel, .logLevel), (.logFormat, .logFormat):
                break
            default:
                return "\(name): a \(value) for an option of kind \(option.kind)"
            }
        }
        return nil
    }

    /// The daemon-wide settings: the drain timeout in range and usable.
    static func problem(in settings: DaemonSettings) -> String? {
        problem(duration: settings.drainTimeout, "drain-timeout")
    }

    /// A listener's policy: every count inside its range, every timeout usable, and the daemon's arithmetic on them
    /// (max-line + 1, a timeout as milliseconds in an Int32 and as microseconds, min-rate as a Double) free of
    /// overflow.
    static func problem(in policy: ListenerPolicy) -> String? {
        let counts: [(String, Int, ClosedRange<Int>)] = [
            ("max-connections", policy.maxConnections, OptionRange.maxConnections),
            ("max-per-source", policy.maxPerSource ?? 1, OptionRange.maxPerSource),
            ("max-line", policy.maxLine, OptionRange.maxLine),
            ("min-rate", policy.minRate, OptionRange.minRate),
            ("source-prefix-v4", policy.sourcePrefixV4, OptionRange.sourcePrefixV4),
            ("source-prefix-v6", policy.sourcePrefixV6, OptionRange.sourcePrefixV6),
            ("reply-rate-per-source", policy.replyRatePerSource, OptionRange.replyRatePerSource),
        ]
        for (name, value, range) in counts where !range.contains(value) {
            return "\(name) \(value) outside \(range)"
        }
        for (name, duration) in [("idle-timeout", policy.idleTimeout), ("request-timeout", policy.requestTimeout)] {
            if let problem = problem(duration: duration, name) { return problem }
        }
        if policy.maxLine.addingReportingOverflow(1).overflow { return "max-line + 1 overflows" }
        // The rate check works in Doubles (bytes per second times seconds): the rate must convert exactly.
        if Int(exactly: Double(policy.minRate)) != policy.minRate { return "min-rate \(policy.minRate) is no exact Double" }
        if let mode = policy.socketMode, mode > ValueSyntax.maximumSocketMode { return "socket-mode \(mode)" }
        if policy.service != .exec, !policy.exec.isEmpty { return "\(policy.service) listener with exec \(policy.exec)" }
        if let allow = policy.allow, allow.isEmpty { return "an empty allow was accepted" }
        for block in (policy.allow ?? []) + policy.deny {
            if let problem = problem(block: block) { return problem }
        }
        return nil
    }

    /// A timeout: 0 to a day, and as the daemon uses it (seconds as a Double for poll's milliseconds in an Int32,
    /// microseconds for a timeval) without overflow.
    static func problem(duration: Duration, _ name: String) -> String? {
        guard duration >= .zero, duration <= .seconds(Int(OptionRange.seconds.upperBound)) else {
            return "\(name) \(duration) outside \(OptionRange.seconds) s"
        }
        let seconds = duration.seconds
        guard seconds.isFinite, OptionRange.seconds.contains(seconds),
            Int32(exactly: (seconds * 1000).rounded(.up)) != nil, Int(exactly: (seconds * 1e6).rounded(.up)) != nil
        else {
            return "\(name) \(duration) (\(seconds) s) does not fit the daemon's arithmetic"
        }
        return nil
    }

    /// A CIDR block: 4 or 16 bytes, a prefix that fits, containing its own network, and printing in a form that
    /// parses back to the same block.
    static func problem(block: CIDRBlock) -> String? {
        guard block.network.count == 4 || block.network.count == 16,
            (0...block.network.count * 8).contains(block.prefixLength)
        else {
            return "block \(block.network) / \(block.prefixLength) malformed"
        }
        guard block.contains(block.network) else { return "\(block) does not contain its own network" }
        guard let again = try? CIDRBlock(parsing: block.description), again == block else {
            return "\(block) does not parse back to itself"
        }
        return nil
    }

    /// A listener address after ``ListenerSpec/address(_:relativeTo:)``: a Unix socket path is absolute.
    static func problem(address: ListenAddress) -> String? {
        if case .bind(let socketAddress) = address, let path = socketAddress.path, !path.hasPrefix("/") {
            return "socket path '\(path)' is not absolute"
        }
        return nil
    }
}
