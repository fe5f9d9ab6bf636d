/// What kind of value an option takes, and how it is read from the command line (text) and from the configuration
/// file (a TOML value). Both paths end in the same checks (``ValueSyntax``, ``OptionRange``, ``AccountID``,
/// ``CIDRBlock``), so a value is accepted or refused alike wherever it is written.
enum OptionKind: Equatable, Sendable {
    /// On or off: a bare `--daemon`, `daemon = true`.
    case flag
    /// On or off, with the value written out: `--log-connections off`, `log-connections = false` (or `"off"`).
    case onOff
    /// A decimal integer within its documented range.
    case integer(ClosedRange<Int>)
    /// A number of seconds, decimals allowed, within ``OptionRange/seconds``.
    case seconds
    /// A file path, made absolute: relative to the working directory on the command line, to the configuration
    /// file's directory in the file.
    case path
    /// A user or group name: non-empty text.
    case name
    /// A processing model name.
    case model
    /// A log level name.
    case logLevel
    /// A log format name.
    case logFormat
    /// User ids or names: `1000,www-data`, `[1000, "www-data"]`.
    case uids
    /// Group ids or names.
    case gids
    /// CIDR blocks: `127.0.0.0/8,::1`, `["127.0.0.0/8", "::1"]`.
    case blocks
    /// An octal file mode: `0660`, `"0660"`, `0o660`.
    case socketMode
    /// A program and its arguments: after `--`, `exec = ["/usr/bin/env", "-i"]`.
    case program
    /// A user to run as, by name or uid, resolved with its groups: `user = "nobody"`.
    case account
    /// One group, by name or gid: `group = "nogroup"`.
    case group
    /// Environment changes: `env = ["LANG=C.UTF-8", "-HOME"]`.
    case environment

    /// The placeholder `--help` shows for the value.
    var valueName: String {
        switch self {
        case .flag, .program: return ""
        case .integer: return "N"
        case .seconds: return "SECONDS"
        case .path: return "PATH"
        case .name: return "NAME"
        case .model: return "MODEL"
        case .logLevel: return "LEVEL"
        case .onOff: return "on|off"
        case .logFormat: return "text|json"
        case .uids: return "UID,…"
        case .gids: return "GID,…"
        case .blocks: return "CIDR,…"
        case .socketMode: return "MODE"
        case .account: return "USER"
        case .group: return "GROUP"
        case .environment: return "NAME=VALUE|-NAME,…"
        }
    }

    /// Whether giving the option again on the command line adds to the list instead of replacing the value.
    var isList: Bool {
        switch self {
        case .uids, .gids, .blocks: return true
        default: return false
        }
    }

    /// Reads a command-line value.
    /// - Parameters:
    ///   - text: The value as typed.
    ///   - directory: The absolute directory relative paths are taken from.
    /// - Throws: ``OptionValueError`` saying what is wrong with the value.
    func parse(_ text: String, relativeTo directory: String) throws(OptionValueError) -> OptionValue {
        switch self {
        case .flag: return .flag(true)
        case .integer(let range): return .integer(try ValueSyntax.integer(text, in: range))
        case .seconds: return .duration(try ValueSyntax.duration(text))
        case .path: return .text(try ValueSyntax.absolutePath(text, relativeTo: directory))
        case .name: return .text(try ValueSyntax.nonEmpty(text))
        case .model: return .model(try ValueSyntax.model(text))
        case .logLevel: return .logLevel(try ValueSyntax.logLevel(text))
        case .onOff: return .flag(try ValueSyntax.onOff(text))
        case .logFormat: return .logFormat(try ValueSyntax.logFormat(text))
        case .uids: return .ids(try AccountID.resolveList(text, kind: .user))
        case .gids: return .ids(try AccountID.resolveList(text, kind: .group))
        case .blocks: return .blocks(try ValueSyntax.cidrBlocks(text))
        case .socketMode: return .mode(try ValueSyntax.socketMode(text))
        case .program: return .words([text])
        case .account: return .account(try ExecIdentity.account(text))
        case .group: return .ids([try AccountID.resolve(text, kind: .group)])
        case .environment:
            var entries: [String] = []
            for entry in try ListSyntax.entries(of: text) { entries.append(try ExecIdentity.environmentEntry(entry)) }
            return .words(entries)
        }
    }

    /// Reads a configuration file value.
    /// - Parameters:
    ///   - value: The TOML value.
    ///   - written: The value's text as written in the file (a socket mode's `660` and `0o660` differ).
    ///   - directory: The absolute directory relative paths are taken from: the file's own.
    /// - Throws: ``OptionValueError`` saying what is wrong with the value, or which TOML type was expected.
    func decode(_ value: TOMLValue, written: Substring, relativeTo directory: String) throws(OptionValueError)
        -> OptionValue
    {
        switch (self, value) {
        case (.flag, .boolean(let on)): return .flag(on)
        case (.integer(let range), .integer(let number)):
            guard let exact = Int(exactly: number) else { throw OptionValueError("\(number) is out of range") }
            return .integer(try ValueSyntax.integer(exact, in: range))
        case (.seconds, .integer(let number)): return .duration(try ValueSyntax.duration(Double(number)))
        case (.seconds, .float(let number)): return .duration(try ValueSyntax.duration(number))
        case (.path, .string(let text)): return .text(try ValueSyntax.absolutePath(text, relativeTo: directory))
        case (.name, .string(let text)): return .text(try ValueSyntax.nonEmpty(text))
        case (.model, .string(let text)): return .model(try ValueSyntax.model(text))
        case (.logLevel, .string(let text)): return .logLevel(try ValueSyntax.logLevel(text))
        case (.onOff, .boolean(let on)): return .flag(on)
        case (.onOff, .string(let text)): return .flag(try ValueSyntax.onOff(text))
        case (.logFormat, .string(let text)): return .logFormat(try ValueSyntax.logFormat(text))
        case (.uids, .array(let elements)): return .ids(try Self.accountIDs(elements, kind: .user))
        case (.gids, .array(let elements)): return .ids(try Self.accountIDs(elements, kind: .group))
        case (.blocks, .array(let elements)):
            var blocks: [CIDRBlock] = []
            for (index, element) in elements.enumerated() {
                guard case .string(let text) = element.value else {
                    throw Self.wrongElement(index, element.value, expected: "an array of CIDR blocks like \"127.0.0.0/8\"")
                }
                blocks.append(try CIDRBlock(parsing: text))
            }
            return .blocks(blocks)
        case (.socketMode, .string(let text)): return .mode(try ValueSyntax.socketMode(text))
        case (.socketMode, .integer(let number)):
            let prefixed = ["0o", "0x", "0b", "+0o"].contains { written.hasPrefix($0) }
            guard let exact = Int(exactly: number) else { throw OptionValueError("\(number) is not a file mode") }
            return .mode(try ValueSyntax.socketMode(exact, writtenInDecimal: !prefixed))
        case (.program, .array(let elements)):
            var words: [String] = []
            for (index, element) in elements.enumerated() {
                guard case .string(let word) = element.value else {
                    throw Self.wrongElement(index, element.value, expected: "an array of strings")
                }
                words.append(word)
            }
            guard let name = words.first, !name.isEmpty else {
                throw OptionValueError("must name a program: expected an array like [\"/usr/bin/env\"]")
            }
            return .words(words)
        case (.account, .string(let text)): return .account(try ExecIdentity.account(text))
        case (.account, .integer(let number)):
            guard let exact = Int(exactly: number) else { throw OptionValueError("\(number) is not a uid") }
            return .account(try ExecIdentity.account(String(try AccountID.resolve(exact, kind: .user))))
        case (.group, .string(let text)): return .ids([try AccountID.resolve(text, kind: .group)])
        case (.group, .integer(let number)):
            guard let exact = Int(exactly: number) else { throw OptionValueError("\(number) is not a gid") }
            return .ids([try AccountID.resolve(exact, kind: .group)])
        case (.environment, .array(let elements)):
            var entries: [String] = []
            for (index, element) in elements.enumerated() {
                guard case .string(let entry) = element.value else {
                    throw Self.wrongElement(index, element.value, expected: "an array of \"NAME=value\" or \"-NAME\" strings")
                }
                entries.append(try ExecIdentity.environmentEntry(entry))
            }
            return .words(entries)
        default:
            throw OptionValueError("must be \(tomlExpectation), not \(Self.article(value.typeName))")
        }
    }

    /// What the file must hold for this kind, for messages.
    private var tomlExpectation: String {
        switch self {
        case .flag: return "true or false"
        case .integer: return "an integer"
        case .seconds: return "a number of seconds"
        case .path, .name, .model, .logLevel, .logFormat: return "a string"
        case .onOff: return "true or false"
        case .uids: return "an array of uids or user names"
        case .gids: return "an array of gids or group names"
        case .blocks: return "an array of CIDR blocks like [\"127.0.0.0/8\"]"
        case .socketMode: return "an octal mode like \"0660\""
        case .program: return "an array holding a program and its arguments, like [\"/usr/bin/env\"]"
        case .account: return "a user name or uid"
        case .group: return "a group name or gid"
        case .environment: return "an array like [\"LANG=C.UTF-8\", \"-HOME\"]"
        }
    }

    private static func accountIDs(_ elements: [TOMLNode], kind: AccountID.Kind) throws(OptionValueError) -> [UInt32] {
        var ids: [UInt32] = []
        for (index, element) in elements.enumerated() {
            switch element.value {
            case .integer(let number):
                guard let exact = Int(exactly: number) else { throw OptionValueError("\(number) is not a \(kind.idName)") }
                ids.append(try AccountID.resolve(exact, kind: kind))
            case .string(let name):
                ids.append(try AccountID.resolve(name, kind: kind))
            default:
                throw wrongElement(index, element.value, expected: "an array of \(kind.idName)s or \(kind.accountName) names")
            }
        }
        return ids
    }

    private static func wrongElement(_ index: Int, _ value: TOMLValue, expected: String) -> OptionValueError {
        OptionValueError("must be \(expected), but element \(index + 1) is \(article(value.typeName))")
    }

    /// A TOML type name with its article: `an integer`, `a string`.
    static func article(_ typeName: String) -> String {
        (["a", "e", "i", "o", "u"].contains { typeName.hasPrefix($0) } ? "an " : "a ") + typeName
    }
}
