import ArgumentParser

/// The command-line options against slow and greedy clients: the whole-request deadline, the minimum inbound rate,
/// the address prefixes that make one source, and the per-source reply rate of datagram listeners. Part of
/// ``ServerdCommand``; each is `nil` when the command line does not give it.
struct ClientLimitOptions: ParsableArguments {
    /// `--request-timeout SECONDS`.
    @Option(
        name: .customLong("request-timeout"),
        help: ArgumentHelp(
            "Stream services: the longest a request may take to arrive however it trickles (stamp: a line, from " +
            "its first byte to its LF), \(OptionRange.secondsText) seconds, decimals allowed; 0 for no limit. " +
            "(default: \(Int(ListenerSettings.defaultRequestTimeout)))",
            valueName: "SECONDS"),
        transform: CommandLineValueError.transform("--request-timeout", OptionValue.seconds))
    var requestTimeout: Double?

    /// `--min-rate BYTES`.
    @Option(
        name: .customLong("min-rate"),
        help: ArgumentHelp(
            "Stream services: close a connection older than --request-timeout (60 s when that is 0) whose average " +
            "inbound rate falls below BYTES per second, \(OptionRange.text(OptionRange.minRate)); 0 for no " +
            "minimum. (default: 0)",
            valueName: "BYTES"),
        transform: CommandLineValueError.transform("--min-rate") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.minRate)
        })
    var minRate: Int?

    /// `--source-prefix-v4 BITS`.
    @Option(
        name: .customLong("source-prefix-v4"),
        help: ArgumentHelp(
            "The leading bits of an IPv4 address that make one source for --max-per-source, " +
            "\(OptionRange.text(OptionRange.sourcePrefixV4)). (default: \(ListenerSettings.defaultSourcePrefixV4))",
            valueName: "BITS"),
        transform: CommandLineValueError.transform("--source-prefix-v4") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.sourcePrefixV4)
        })
    var sourcePrefixV4: Int?

    /// `--source-prefix-v6 BITS`.
    @Option(
        name: .customLong("source-prefix-v6"),
        help: ArgumentHelp(
            "The leading bits of an IPv6 address that make one source for --max-per-source, " +
            "\(OptionRange.text(OptionRange.sourcePrefixV6)). (default: \(ListenerSettings.defaultSourcePrefixV6))",
            valueName: "BITS"),
        transform: CommandLineValueError.transform("--source-prefix-v6") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.sourcePrefixV6)
        })
    var sourcePrefixV6: Int?

    /// `--reply-rate-per-source N`.
    @Option(
        name: .customLong("reply-rate-per-source"),
        help: ArgumentHelp(
            "UDP listeners: at most N replies per second to one source prefix, " +
            "\(OptionRange.text(OptionRange.replyRatePerSource)); 0 for unlimited. " +
            "(default: \(ListenerSettings.defaultReplyRatePerSource))",
            valueName: "N"),
        transform: CommandLineValueError.transform("--reply-rate-per-source") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.replyRatePerSource)
        })
    var replyRatePerSource: Int?
}
