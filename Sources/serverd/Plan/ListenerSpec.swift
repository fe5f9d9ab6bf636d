import FamilyServer

/// A `SERVICE@ADDRESS` text, as `--listen` and the configuration file's `listen` give it, read into a service and a
/// listen address.
enum ListenerSpec {
    /// Splits `SERVICE@ADDRESS` and checks the service.
    /// - Throws: ``OptionValueError`` when the `@`, the service or the address is missing, or the service is unknown
    ///   (with the service it most likely meant).
    static func split(_ text: String) throws(OptionValueError) -> (service: ServiceName, address: String) {
        guard let at = text.firstIndex(of: "@") else {
            throw OptionValueError("expected SERVICE@ADDRESS, found no '@'")
        }
        let name = String(text[..<at])
        let address = String(text[text.index(after: at)...])
        guard !name.isEmpty else { throw OptionValueError("the service name before '@' is empty") }
        guard !address.isEmpty else { throw OptionValueError("the address after '@' is empty") }
        guard let service = ServiceName(rawValue: name) else {
            let hint = Suggestion.closest(to: name, among: ServiceName.allCases.map(\.rawValue))
                .map { "; did you mean '\($0)'?" } ?? ""
            throw OptionValueError("unknown service '\(name)' (known: \(ServiceName.knownNames))\(hint)")
        }
        return (service, address)
    }

    /// Parses the address of a spec; a relative Unix socket path is taken from `directory`.
    /// - Throws: ``OptionValueError`` with the library's reason, and a hint where the intent is guessable
    ///   (`tcp://::1:7000` → `tcp://[::1]:7000`).
    static func address(_ text: String, relativeTo directory: String) throws(OptionValueError) -> ListenAddress {
        var address: ListenAddress
        do {
            address = try ListenAddress(parsing: text)
        } catch {
            throw OptionValueError("\(error)\(hint(for: text))")
        }
        if case .bind(var socketAddress) = address, let path = socketAddress.path, !path.hasPrefix("/") {
            socketAddress.endpoint = .unixPath((directory == "/" ? "" : directory) + "/" + path)
            address = .bind(socketAddress)
        }
        return address
    }

    /// A hint for an address that failed to parse, where the mistake is a common one.
    private static func hint(for text: String) -> String {
        for scheme in ["tcp://", "udp://"] where text.hasPrefix(scheme) {
            let rest = text.dropFirst(scheme.count)
            // An IPv6 address without brackets: tcp://::1:7000 → tcp://[::1]:7000.
            if !rest.hasPrefix("["), rest.filter({ $0 == ":" }).count > 1, let colon = rest.lastIndex(of: ":") {
                return " (did you mean \(scheme)[\(rest[..<colon])]\(rest[colon...])?)"
            }
        }
        for (wrong, right) in [("tcp:", "tcp://"), ("udp:", "udp://"), ("unix://", "unix:"), ("unixgram://", "unixgram:")]
        where text.hasPrefix(wrong) && !text.hasPrefix(right) {
            return " (did you mean \(right)\(text.dropFirst(wrong.count))?)"
        }
        return ""
    }
}
