/// One option, declared once: its name (the command line's `--NAME` and the configuration file's key), the kind of
/// value it takes, where it applies, what a reload does with it, its default, its help, and the field it sets.
///
/// ``OptionTable`` lists them all; the command line, the configuration file, the merge of the two, `--help` and the
/// check of serverd(8) read nothing else.
struct Option: Sendable {
    /// Where an option applies.
    enum Scope: Sendable {
        /// The whole daemon (``DaemonSettings``); a top-level key of the file.
        case daemon
        /// Each listener (``ListenerPolicy``); a top-level key of the file (for every listener) and a key of
        /// `[[listener]]` (for that one).
        case listener
        /// A key of `[[listener]]` only: the identity and limits of that listener's exec children (`user`, `chroot`,
        /// `rlimit-nofile`, …), applied in the child before it runs the program. Not on the command line nor at the
        /// top level, where `user` and `group` are the daemon's own.
        case execChild
        /// `listen`: declares listeners rather than setting a value.
        case listeners
        /// The command line only: how to run serverd this time (`--config`, `--check-config`, `--help`).
        case invocation
    }

    /// What a reload does with a changed value.
    enum Reload: Sendable {
        /// The new value applies (to new connections, for a listener's).
        case applies
        /// The running value stays until the next start; the reload says so in the log.
        case atRestart
    }

    /// The field an option sets.
    enum Field: Sendable {
        case daemon(@Sendable (inout DaemonSettings, OptionValue) -> Void)
        case listener(@Sendable (inout ListenerPolicy, OptionValue) -> Void)
        case none
    }

    /// `max-connections`: the command line's `--max-connections` and the file's `max-connections`.
    let name: String
    /// The kind of value.
    let kind: OptionKind
    /// Where it applies.
    let scope: Scope
    /// What a reload does with a changed value.
    let reload: Reload
    /// The value when none is given; `nil` when the absence of a value means something (``defaultText``).
    let defaultValue: OptionValue?
    /// The default as `--help` writes it, when ``defaultValue`` is `nil`: `none`, `unlimited`, `everyone`.
    let defaultText: String
    /// One or two sentences for `--help`.
    let help: String
    /// The field it sets.
    let field: Field

    /// The flag that gives it on the command line; `nil` for `exec`, which the command line gives after `--`, and
    /// for the keys of `[[listener]]` alone.
    var flag: String? { kind == .program || scope == .execChild ? nil : "--" + name }

    /// Its key in an ``OptionLayer``: the name, qualified for a `[[listener]]`-only key (whose name, `user` or
    /// `group`, may also be a daemon-wide option's).
    var key: String { scope == .execChild ? "[[listener]]." + name : name }

    /// Whether the configuration file takes it as a key.
    var isFileKey: Bool { scope != .invocation }

    /// The default as `--help` and serverd(8) write it.
    var defaultDisplay: String { defaultValue?.display ?? defaultText }

    /// Stores `value` in the daemon-wide settings (nothing for a per-listener option).
    func apply(_ value: OptionValue, to settings: inout DaemonSettings) {
        if case .daemon(let set) = field { set(&settings, value) }
    }

    /// Stores `value` in a listener's policy (nothing for a daemon-wide option).
    func apply(_ value: OptionValue, to policy: inout ListenerPolicy) {
        if case .listener(let set) = field { set(&policy, value) }
    }
}

