/// What `--check-config` prints once the same planning and checks as a start found nothing wrong: one line per
/// listener that would start, with where it was declared and every option value it would serve with.
enum CheckReport {
    static func lines(_ state: DesiredState) -> [String] {
        state.listeners.map { listener in
            var details = ["model \(state.settings.model.rawValue)"]
            for option in OptionTable.all where option.scope == .listener || option.scope == .execChild {
                if let value = listener.values[option.name] { details.append("\(option.name) \(value.display)") }
            }
            return "\(listener.text) (\(listener.place); \(details.joined(separator: ", ")))"
        }
    }
}
