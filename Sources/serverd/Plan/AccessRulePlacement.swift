/// An access rule a listener carries, where it was written, and whether it must apply to this very listener.
///
/// A rule written in a listener's own `[[listener]]` table must fit that listener: `allow`/`deny` an inet one,
/// `allow-uid`/`allow-gid` a Unix one. A rule of the command line or of the file's top level applies to every
/// listener it fits and is silently left out on the others; it is an error only when it can apply to no configured
/// listener. A listener on an inherited socket (`systemd:NAME`, `systemd`, `fd:N`) shows its family only once the
/// socket is adopted: its rules are checked then, and until then it counts as a listener any rule may apply to.
struct AccessRuleSource: Equatable, Sendable {
    /// The rule.
    var rule: AccessRule
    /// Where it was written, as messages start: `FILE:LINE: allow` or `--allow`.
    var place: String
    /// The status of the error when it cannot apply: 64 for the command line, 78 for the file.
    var status: ExitStatus
    /// Whether it must apply to this listener: it is the listener's own, or no other listener may take it.
    var mustApply: Bool

    /// The rule sources of each listener.
    /// - Parameters:
    ///   - listeners: The configured listeners, each with the `FILE:LINE` of every rule its own table writes.
    ///   - commandLine: The rules the command line gives.
    ///   - topLevel: The `FILE:LINE` of every rule the file's top level writes.
    /// - Returns: For each listener, in the same order, the sources of the rules it carries.
    static func sources(
        of listeners: [(family: ListenerFamily?, ownRules: [AccessRule: String])],
        commandLine: [AccessRule], topLevel: [AccessRule: String]
    ) -> [[AccessRuleSource]] {
        let families = listeners.map(\.family)
        return listeners.indices.map { index in
            AccessRule.allCases.compactMap { rule -> AccessRuleSource? in
                if let place = listeners[index].ownRules[rule] {
                    return AccessRuleSource(
                        rule: rule, place: "\(place): \(rule.rawValue)", status: .configuration, mustApply: true)
                }
                let elsewhere = families.indices.contains { other in
                    other != index && (families[other].map(rule.applies(to:)) ?? true)
                }
                if commandLine.contains(rule) {
                    return AccessRuleSource(
                        rule: rule, place: "--\(rule.rawValue)", status: .usage, mustApply: !elsewhere)
                }
                return topLevel[rule].map {
                    AccessRuleSource(
                        rule: rule, place: "\($0): \(rule.rawValue)", status: .configuration, mustApply: !elsewhere)
                }
            }
        }
    }
}

extension ListenerDeclaration {
    /// Checks that the access rules this listener must apply fit its family.
    /// - Parameter family: The listener's family, from its address or from its adopted socket.
    /// - Throws: ``DaemonError`` naming where the rule was written and the listener: exit 64 for a rule of the command
    ///   line, 78 for one of the file.
    func checkAccessRules(for family: ListenerFamily) throws(DaemonError) {
        for source in accessRules where source.mustApply && !source.rule.applies(to: family) {
            throw DaemonError(
                source.status,
                "\(source.place): applies only to \(source.rule.applicableListeners), and '\(text)' is "
                    + "\(family.description)")
        }
    }
}
