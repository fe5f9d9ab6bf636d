import ArgumentParser

/// serverd's command line, `serverd [OPTIONS] [-- PROGRAM ARGS…]` (SPEC section 3).
///
/// Each option is `nil` (or empty, or `false`) when the command line does not give it, so that
/// ``DaemonConfiguration/load(from:)`` can tell it from a default: the configuration file's top level fills what the
/// command line leaves out, and the built-in defaults fill the rest. Values are checked while parsing, with the same
/// rules as the file's (``OptionValue``), and the paths of `--config`, `--pidfile` and `--log-file` are made absolute,
/// so that they survive `--daemon`'s change of working directory. Parse with ``parseCommandLine(_:)``, never with
/// ArgumentParser's `main()`, which would exit with its own statuses.
struct ServerdCommand: ParsableCommand {
    /// What `--version` prints.
    static let version = "serverd 0.1.0"

    /// The help's name, usage line, description and the version.
    static let configuration = CommandConfiguration(
        commandName: "serverd",
        abstract: "Serve echo, discard, daytime, stamp and exec over TCP, UDP and Unix sockets.",
        usage: "serverd [OPTIONS] [-- PROGRAM ARGS…]",
        discussion: """
            ADDRESS is tcp://HOST:PORT or udp://HOST:PORT (HOST: 127.0.0.1, [::1], * for the dual-stack \
            wildcard, 0.0.0.0, or a name), unix:PATH, unix:@NAME, unixgram:PATH, unixgram:@NAME, \
            systemd:NAME (an inherited socket by its fd name), systemd (every unclaimed inherited socket) or fd:N.

            With no listener configured and no inherited socket, serverd serves stamp@tcp://127.0.0.1:21568, \
            stamp@tcp://[::1]:21568, echo@udp://127.0.0.1:21568 and echo@unix:serverd.sock in $RUNTIME_DIRECTORY, \
            else $XDG_RUNTIME_DIR, else the temporary directory.

            Every option but --config and --check-config is also a key of the --config TOML file; \
            command-line options win over its top level and its [[listener]] tables win over both. \
            SIGHUP re-reads the file.

            Exit status: 0 stopped cleanly, 64 usage error, 78 configuration error, 69 address in use, \
            71 system error, 77 permission denied.
            """,
        version: version
    )

    /// `--listen SERVICE@ADDRESS`, repeatable: listeners added to the configuration file's.
    @Option(
        name: .customLong("listen"),
        help: ArgumentHelp(
            "Serve SERVICE (echo, discard, daytime, stamp or exec) on ADDRESS; repeatable, adds to the --config " +
            "file's listeners. (default: the inherited sockets, else the built-in set above)",
            valueName: "SERVICE@ADDRESS"),
        transform: CommandLineValueError.listenTransform)
    var listen: [ListenSpec] = []

    /// `--config FILE`: the TOML configuration file.
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp("Read listeners and options from this TOML file. (default: none)", valueName: "FILE"),
        completion: .file(extensions: ["toml"]),
        transform: CommandLineValueError.transform("--config", OptionValue.absolutePath))
    var config: String?

    /// `--check-config`: validate, print the listeners that would start, exit.
    @Flag(
        name: .customLong("check-config"),
        help: ArgumentHelp(
            "Check the options and the configuration file, print the listeners that would start, and exit. " +
            "(default: off)"))
    var checkConfig = false

    /// `--model serial|threading|forking`.
    @Option(
        name: .customLong("model"),
        help: ArgumentHelp(
            "Processing model: serial, threading or forking. (default: \(ModelName.defaultModel.rawValue))",
            valueName: "MODEL"),
        completion: .list(ModelName.allCases.map(\.rawValue)),
        transform: CommandLineValueError.transform("--model", OptionValue.model))
    var model: ModelName?

    /// `--max-connections N`.
    @Option(
        name: .customLong("max-connections"),
        help: ArgumentHelp(
            "At most N connections at once per listener, N from \(OptionRange.text(OptionRange.maxConnections)); " +
            "at the limit, stop accepting until one ends. (default: \(ListenerSettings.defaultMaxConnections))",
            valueName: "N"),
        transform: CommandLineValueError.transform("--max-connections") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.maxConnections)
        })
    var maxConnections: Int?

    /// `--max-per-source N`.
    @Option(
        name: .customLong("max-per-source"),
        help: ArgumentHelp(
            "At most N simultaneous connections per listener from one source (an address prefix, see " +
            "--source-prefix-v4 and --source-prefix-v6) or one uid, N from " +
            "\(OptionRange.text(OptionRange.maxPerSource)); more are closed unserved. (default: unlimited)",
            valueName: "N"),
        transform: CommandLineValueError.transform("--max-per-source") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.maxPerSource)
        })
    var maxPerSource: Int?

    /// `--idle-timeout SECONDS`.
    @Option(
        name: .customLong("idle-timeout"),
        help: ArgumentHelp(
            "Close a stream connection idle this long, \(OptionRange.secondsText) seconds, decimals allowed; " +
            "0 for no idle timeout. (default: \(Int(ListenerSettings.defaultIdleTimeout)))",
            valueName: "SECONDS"),
        transform: CommandLineValueError.transform("--idle-timeout", OptionValue.seconds))
    var idleTimeout: Double?

    /// `--max-line BYTES`.
    @Option(
        name: .customLong("max-line"),
        help: ArgumentHelp(
            "Longest line the line services accept, in bytes before the LF, " +
            "\(OptionRange.text(OptionRange.maxLine)); a longer one closes the connection. " +
            "(default: \(ListenerSettings.defaultMaxLine))",
            valueName: "BYTES"),
        transform: CommandLineValueError.transform("--max-line") { (text) throws(OptionValueError) in
            try OptionValue.integer(text, in: OptionRange.maxLine)
        })
    var maxLine: Int?

    /// `--drain-timeout SECONDS`.
    @Option(
        name: .customLong("drain-timeout"),
        help: ArgumentHelp(
            "On stop, how long in-flight connections may take to finish, \(OptionRange.secondsText) seconds, " +
            "decimals allowed. (default: \(Int(DaemonConfiguration.defaultDrainTimeout)))",
            valueName: "SECONDS"),
        transform: CommandLineValueError.transform("--drain-timeout", OptionValue.seconds))
    var drainTimeout: Double?

    /// `--request-timeout`, `--min-rate`, `--source-prefix-v4`, `--source-prefix-v6`, `--reply-rate-per-source`.
    @OptionGroup var clientLimits: ClientLimitOptions

    /// `--allow-uid UID,…`, repeatable; each value a comma-separated list of uids or user names.
    @Option(
        name: .customLong("allow-uid"),
        help: ArgumentHelp(
            "Unix listeners: serve only peers with one of these uids (numbers or user names), or with a gid of " +
            "--allow-gid. (default: everyone)",
            valueName: "UID,…"),
        transform: CommandLineValueError.transform("--allow-uid") { (text) throws(OptionValueError) in
            try AccountID.resolveList(text, kind: .user)
        })
    var allowUID: [[UInt32]] = []

    /// `--allow-gid GID,…`, repeatable; each value a comma-separated list of gids or group names.
    @Option(
        name: .customLong("allow-gid"),
        help: ArgumentHelp(
            "Unix listeners: serve only peers with one of these gids (numbers or group names), or with a uid of " +
            "--allow-uid. (default: everyone)",
            valueName: "GID,…"),
        transform: CommandLineValueError.transform("--allow-gid") { (text) throws(OptionValueError) in
            try AccountID.resolveList(text, kind: .group)
        })
    var allowGID: [[UInt32]] = []

    /// `--allow CIDR,…`, repeatable.
    @Option(
        name: .customLong("allow"),
        help: ArgumentHelp(
            "Inet listeners: serve only sources in these blocks (10.0.0.0/8, ::1); an IPv6 block also holds the " +
            "IPv4-mapped form of an IPv4 source. (default: everyone)",
            valueName: "CIDR,…"),
        transform: CommandLineValueError.transform("--allow", OptionValue.cidrBlocks))
    var allow: [[CIDRBlock]] = []

    /// `--deny CIDR,…`, repeatable.
    @Option(
        name: .customLong("deny"),
        help: ArgumentHelp(
            "Inet listeners: never serve sources in these blocks; deny wins over allow. (default: no one)",
            valueName: "CIDR,…"),
        transform: CommandLineValueError.transform("--deny", OptionValue.cidrBlocks))
    var deny: [[CIDRBlock]] = []

    /// `--socket-mode MODE`.
    @Option(
        name: .customLong("socket-mode"),
        help: ArgumentHelp(
            "Permission bits, in octal (0660 or 660), of the Unix socket files serverd creates. (default: from the " +
            "umask)",
            valueName: "MODE"),
        transform: CommandLineValueError.transform("--socket-mode", OptionValue.socketMode))
    var socketMode: UInt32?

    /// `--daemon`.
    @Flag(
        name: .customLong("daemon"),
        help: "Detach (SysV style) once serving; logs go to syslog unless --log-file is given. (default: foreground)")
    var daemon = false

    /// `--pidfile PATH`.
    @Option(
        name: .customLong("pidfile"),
        help: ArgumentHelp(
            "Write the PID here once ready; refuse to start if a live process holds it. (default: none)",
            valueName: "PATH"),
        completion: .file(),
        transform: CommandLineValueError.transform("--pidfile", OptionValue.absolutePath))
    var pidfile: String?

    /// `--user NAME`.
    @Option(
        name: .customLong("user"),
        help: ArgumentHelp("Switch to this user after binding. (default: none)", valueName: "NAME"),
        transform: CommandLineValueError.transform("--user", OptionValue.nonEmpty))
    var user: String?

    /// `--group NAME`.
    @Option(
        name: .customLong("group"),
        help: ArgumentHelp("Switch to this group after binding. (default: none)", valueName: "NAME"),
        transform: CommandLineValueError.transform("--group", OptionValue.nonEmpty))
    var group: String?

    /// `--log-level LEVEL`.
    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "Lowest level logged: debug, info, notice, warning or error. " +
            "(default: \(LogLevelName.defaultLevel.rawValue))",
            valueName: "LEVEL"),
        completion: .list(LogLevelName.allCases.map(\.rawValue)),
        transform: CommandLineValueError.transform("--log-level", OptionValue.logLevel))
    var logLevel: LogLevelName?

    /// `--log-file PATH`.
    @Option(
        name: .customLong("log-file"),
        help: ArgumentHelp(
            "Append logs to this file. (default: stderr, or syslog with --daemon)", valueName: "PATH"),
        completion: .file(),
        transform: CommandLineValueError.transform("--log-file", OptionValue.absolutePath))
    var logFile: String?

    /// `-- PROGRAM ARGS…`: what `exec` listeners run when their configuration names no program.
    @Argument(
        parsing: .postTerminator,
        help: ArgumentHelp(
            "After --: the program and arguments that exec listeners run per connection. (default: the --config " +
            "file's exec)",
            valueName: "PROGRAM ARGS"))
    var program: [String] = []

    /// Refuses an empty program name after `--`.
    /// - Throws: ``CommandLineValueError``.
    func validate() throws {
        if let name = program.first, name.isEmpty {
            throw CommandLineValueError(message: "-- PROGRAM: the program name is empty")
        }
    }
}
