import FamilyServer

/// How to get from the running listeners to the desired ones: keep and update in place those whose identity
/// (address and socket origin) stays, open the new ones, close the ones no longer declared. A pure function of the
/// two sets; start-up is the plan against nothing running.
struct ReloadPlan: Equatable, Sendable {
    /// Listeners that stay: the running socket keeps serving, with this declaration's policy for new connections.
    var update: [ListenerDeclaration] = []
    /// Listeners to open.
    var add: [ListenerDeclaration] = []
    /// Running listeners to close (their connections finish).
    var remove: [ListenerIdentity] = []

    /// The plan from `running` to `desired`.
    /// - Parameters:
    ///   - desired: The listeners the configuration declares, identities unique.
    ///   - running: The identities of the running listeners.
    init(desired: [ListenerDeclaration], running: [ListenerIdentity]) {
        let runningSet = Set(running)
        let desiredSet = Set(desired.map(\.identity))
        for declaration in desired {
            if runningSet.contains(declaration.identity) {
                update.append(declaration)
            } else {
                add.append(declaration)
            }
        }
        remove = running.filter { !desiredSet.contains($0) }
    }
}
