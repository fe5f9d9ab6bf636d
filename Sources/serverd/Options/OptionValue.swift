/// One option's value, checked and converted, before it is stored in a ``DaemonSettings`` or a ``ListenerPolicy``.
///
/// The command line and the configuration file both produce these (through ``OptionKind``), so both accept and
/// refuse the same values; merging them is a matter of which one wins.
enum OptionValue: Equatable, Sendable {
    case flag(Bool)
    case integer(Int)
    case duration(Duration)
    case text(String)
    case words([String])
    case ids([UInt32])
    case blocks([CIDRBlock])
    case mode(UInt32)
    case model(ModelName)
    case logLevel(LogLevelName)
    case logFormat(LogFormatName)
    case account(ExecIdentity.Account)

    /// This value followed by `more`, for a list option given again on the command line (`--allow A --allow B`);
    /// other values are replaced.
    func appending(_ more: OptionValue) -> OptionValue {
        switch (self, more) {
        case (.ids(let first), .ids(let second)): return .ids(first + second)
        case (.blocks(let first), .blocks(let second)): return .blocks(first + second)
        default: return more
        }
    }

    // The accessors below serve ``OptionTable``'s entries, each of which reads the one case its kind produces.

    var flag: Bool { if case .flag(let value) = self { value } else { false } }
    var integer: Int { if case .integer(let value) = self { value } else { 0 } }
    var duration: Duration { if case .duration(let value) = self { value } else { .zero } }
    var text: String { if case .text(let value) = self { value } else { "" } }
    var words: [String] { if case .words(let value) = self { value } else { [] } }
    var ids: [UInt32] { if case .ids(let value) = self { value } else { [] } }
    var blocks: [CIDRBlock] { if case .blocks(let value) = self { value } else { [] } }
    var mode: UInt32 { if case .mode(let value) = self { value } else { 0 } }
    var modelName: ModelName { if case .model(let value) = self { value } else { .threading } }
    var levelName: LogLevelName { if case .logLevel(let value) = self { value } else { .info } }
    var formatName: LogFormatName { if case .logFormat(let value) = self { value } else { .text } }
    var account: ExecIdentity.Account? { if case .account(let value) = self { value } else { nil } }

    /// The value as `--help`, serverd(8) and `--check-config` write it: `300`, `2.5`, `0660`, `127.0.0.0/8,::1`.
    var display: String {
        switch self {
        case .flag(let value): return value ? "on" : "off"
        case .integer(let value): return String(value)
        case .duration(let value): return ValueSyntax.display(value.seconds)
        case .text(let value): return value
        case .words(let value): return value.joined(separator: " ")
        case .ids(let value): return value.map(String.init).joined(separator: ",")
        case .blocks(let value): return value.map(\.description).joined(separator: ",")
        case .mode(let value): return "0" + String(value, radix: 8)
        case .model(let value): return value.rawValue
        case .logLevel(let value): return value.rawValue
        case .logFormat(let value): return value.rawValue
        case .account(let value): return "\(value.name) (uid \(value.uid), gid \(value.gid))"
        }
    }
}
