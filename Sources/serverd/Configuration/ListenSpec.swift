/// A parsed `SERVICE@ADDRESS` listener spec, as given to `--listen` or in the configuration file's `listen`.
///
/// Only the service is checked here. The address (the text after the first `@`) is kept as written: the daemon
/// parses it when it opens the listener.
struct ListenSpec: Equatable, Sendable {
    /// The service to run.
    var service: ServiceName
    /// The address text after the first `@`, never empty (e.g. `tcp://127.0.0.1:7`, `unix:@name`, `systemd`).
    var address: String

    /// Parses `SERVICE@ADDRESS`.
    /// - Parameter text: The spec as written.
    /// - Throws: ``OptionValueError`` when the `@`, the service or the address is missing, or the service is unknown.
    init(parsing text: String) throws(OptionValueError) {
        guard let at = text.firstIndex(of: "@") else {
            throw OptionValueError("expected SERVICE@ADDRESS, found no '@'")
        }
        let name = String(text[..<at])
        let address = String(text[text.index(after: at)...])
        guard !name.isEmpty else {
            throw OptionValueError("the service name before '@' is empty")
        }
        guard !address.isEmpty else {
            throw OptionValueError("the address after '@' is empty")
        }
        guard let service = ServiceName(rawValue: name) else {
            throw OptionValueError("unknown service '\(name)' (known: \(ServiceName.knownNames))")
        }
        self.service = service
        self.address = address
    }

    /// The canonical text, `SERVICE@ADDRESS`.
    var text: String { "\(service.rawValue)@\(address)" }
}
