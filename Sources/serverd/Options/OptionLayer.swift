/// The options one source gives — the command line, the configuration file's top level, or one `[[listener]]`
/// table — each with the place it was written, for messages.
///
/// Layers are applied over the defaults in order of precedence (file top level, then command line, then the
/// listener's own table), so that the last one that gives an option wins.
struct OptionLayer: Equatable, Sendable {
    /// One option's value and where it was written: `--allow`, `serverd.toml:4:1`.
    struct Entry: Equatable, Sendable {
        var value: OptionValue
        var place: String
    }

    private(set) var entries: [String: Entry] = [:]

    /// Sets an option's value; a list option given again on the command line adds to the list.
    mutating func set(_ option: Option, _ value: OptionValue, place: String, appending: Bool = false) {
        if appending, let earlier = entries[option.key] {
            entries[option.key] = Entry(value: earlier.value.appending(value), place: place)
        } else {
            entries[option.key] = Entry(value: value, place: place)
        }
    }

    /// The value given for the option whose ``Option/key`` is `key` (its name, for all but `[[listener]]` keys).
    subscript(key: String) -> Entry? { entries[key] }
}

extension OptionTable {
    /// The value of every option of `scope` that has one, by name: the last of `layers` that gives it, else its
    /// default.
    static func resolve(_ scope: Option.Scope, layers: [OptionLayer]) -> [String: OptionValue] {
        var values: [String: OptionValue] = [:]
        for option in all where option.scope == scope {
            if let value = layers.last(where: { $0[option.key] != nil })?[option.key]?.value ?? option.defaultValue {
                values[option.name] = value
            }
        }
        return values
    }
}
