import FamilyServer

/// One listener as the configuration wants it: where it listens (its identity), what it serves and how, and where
/// it was declared. A plain value, no socket: what `--check-config` prints and what a reload compares.
struct ListenerDeclaration: Equatable, Sendable {
    /// The address and socket origin (bound by serverd, `systemd:NAME`, `systemd`, `fd:N`): what a reload compares
    /// listeners by. One whose identity stays keeps its socket and its connections.
    var identity: ListenerIdentity
    /// The service and every per-listener option, resolved.
    var policy: ListenerPolicy
    /// The value of every per-listener option that has one, for `--check-config`'s report.
    var values: [String: OptionValue]
    /// `SERVICE@ADDRESS` as written.
    var text: String
    /// Where it was declared: `--listen`, or `FILE:LINE:COLUMN`.
    var place: String
    /// The access rules it carries and where each was written, for the check of its family.
    var accessRules: [AccessRuleSource] = []

    /// Whether it was declared on the command line (its errors are usage errors, exit 64).
    var isCommandLine: Bool { place == "--listen" }

    /// The place of an implicit listener.
    static let implicitPlace = "implicit listener"

    /// The start of a message about it: `--listen 'echo@tcp://…'`, `serverd.toml:3:10: listen 'echo@…'`.
    var subject: String { isCommandLine ? "--listen '\(text)'" : "\(place): listen '\(text)'" }

    /// Its family, when the address shows it (not for inherited sockets, known once adopted).
    var family: ListenerFamily? {
        guard case .bind(let address) = identity.address else { return nil }
        return address.isUnix ? .unix : .inet
    }
}
