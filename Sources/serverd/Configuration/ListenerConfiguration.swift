/// One listener serverd is configured to serve: a service, the address text to open, and its settings.
struct ListenerConfiguration: Equatable, Sendable {
    /// The service to run.
    var service: ServiceName
    /// The address as written, the text after the first `@` (e.g. `tcp://127.0.0.1:7`); the daemon parses it.
    var address: String
    /// The listener's options, defaults filled in.
    var settings: ListenerSettings
    /// Where the listener was declared, for messages: `--listen`, or `FILE:LINE` (`FILE` when the line is unknown).
    var origin: String
    /// The access rules it carries and where each was written, for ``checkAccessRules(for:)``.
    var accessRules: [AccessRuleSource] = []

    /// The configured `SERVICE@ADDRESS` text, the key that reload compares listeners by.
    var text: String { "\(service.rawValue)@\(address)" }

    /// Whether `other` is the same listener with the same options, wherever each was declared: what SIGHUP's reload
    /// asks to decide whether a listener keeps its socket and connections.
    func isEquivalent(to other: ListenerConfiguration) -> Bool {
        service == other.service && address == other.address && settings == other.settings
    }
}
