import FamilyServer

/// What serverd should be doing: the daemon-wide settings and every listener, as plain values. Built from the
/// command line, the configuration file and the built-in defaults at start, for `--check-config` and on every
/// reload; the daemon then makes the running state match it (``ReloadPlan``).
struct DesiredState: Equatable, Sendable {
    /// The value of every daemon-wide option that has one.
    var daemonValues: [String: OptionValue]
    /// The daemon-wide options.
    var settings: DaemonSettings { DaemonSettings(values: daemonValues) }
    /// The listeners, in order: the file's top-level `listen`, its `[[listener]]` tables, then `--listen`, then the
    /// implicit ones: when none is configured, the inherited sockets by fd name, else the built-in set; otherwise the
    /// inherited sockets that no `systemd` listener claims, by fd name.
    var listeners: [ListenerDeclaration]

    /// Builds the desired state.
    ///
    /// A listener's options come from its own `[[listener]]` table, else the command line, else the file's top level,
    /// else the default; daemon-wide options from the command line, else the file, else the default. An `exec`
    /// listener's program is its table's `exec`, else the command line's `-- PROGRAM ARGS`, else the file's.
    /// - Parameters:
    ///   - invocation: The command line.
    ///   - implicitListeners: The `SERVICE@ADDRESS` texts to serve besides the configured listeners, given the
    ///     addresses these declare (none: nothing is configured).
    /// - Throws: ``DaemonError``: exit 64 for what the command line declares wrong, 78 for the file's.
    static func build(
        _ invocation: Invocation, implicitListeners: (_ declared: [ListenAddress]) throws(DaemonError) -> [String]
    ) throws(DaemonError) -> DesiredState {
        let file = try invocation.configFile.map { (path) throws(DaemonError) in try ConfigFile.read(path) }
        let daemonValues = OptionTable.resolve(.daemon, layers: [file?.topLevel ?? OptionLayer(), invocation.options])

        var declared: [(listen: ConfigFile.Listen, commandLine: Bool)] = (file?.listeners ?? []).map { ($0, false) }
        declared += invocation.listen.map { (ConfigFile.Listen(text: $0, place: "--listen"), true) }
        var listeners: [ListenerDeclaration] = []
        for (listen, _) in declared {
            listeners.append(try declaration(listen, file: file, invocation: invocation))
        }
        for text in try implicitListeners(listeners.map(\.identity.address)) {
            let listen = ConfigFile.Listen(text: text, place: ListenerDeclaration.implicitPlace)
            declared.append((listen, false))
            listeners.append(try declaration(listen, file: file, invocation: invocation))
        }
        try checkUnique(&listeners)
        let sources = AccessRuleSource.sources(
            of: declared.indices.map { index in
                (listeners[index].family, ruleplaces(declared[index].listen.options))
            },
            commandLine: AccessRule.allCases.filter { invocation.options[$0.rawValue] != nil },
            topLevel: ruleplaces(file?.topLevel ?? OptionLayer()))
        for index in listeners.indices {
            listeners[index].accessRules = sources[index]
            if let family = listeners[index].family { try listeners[index].checkAccessRules(for: family) }
        }
        let state = DesiredState(daemonValues: daemonValues, listeners: listeners)
        if state.settings.model == .forking, let resolving = listeners.first(where: \.policy.resolve) {
            // A lookup runs on a thread of its own, and the forking model keeps serverd single-threaded for its forks.
            let bothOnCommandLine = invocation.options["resolve"] != nil && invocation.options["model"] != nil
            throw DaemonError(
                bothOnCommandLine ? .usage : .configuration,
                "\(resolving.subject): resolve looks names up on a thread of its own, which the forking model (kept "
                    + "single-threaded for its forks) does not allow: use --model threading or serial")
        }
        if state.settings.model != .forking, state.settings.prefork > 0 {
            throw DaemonError(
                invocation.options["prefork"] != nil ? .usage : .configuration,
                "prefork \(state.settings.prefork): only the forking model pre-forks workers, not the "
                    + "\(state.settings.model.rawValue) model: use --model forking, or prefork 0")
        }
        return state
    }

    /// One listener: its spec parsed, its options resolved.
    private static func declaration(
        _ listen: ConfigFile.Listen, file: ConfigFile?, invocation: Invocation
    ) throws(DaemonError) -> ListenerDeclaration {
        let commandLine = listen.place == "--listen"
        let subject = commandLine ? "--listen '\(listen.text)'" : "\(listen.place): listen '\(listen.text)'"
        let status: ExitStatus = commandLine ? .usage : .configuration
        let service: ServiceName
        let address: ListenAddress
        do throws(OptionValueError) {
            let (name, text) = try ListenerSpec.split(listen.text)
            service = name
            address = try ListenerSpec.address(text, relativeTo: invocation.workingDirectory)
        } catch {
            throw DaemonError(status, "\(subject): \(error.reason)")
        }
        var values = OptionTable.resolve(
            .listener, layers: [file?.topLevel ?? OptionLayer(), invocation.options, listen.options])
        values.merge(OptionTable.resolve(.execChild, layers: [listen.options])) { _, own in own }
        if service != .exec { values["exec"] = nil }
        let policy = ListenerPolicy(service: service, values: values)
        let declaration = ListenerDeclaration(
            identity: ListenerIdentity(address: address, service: service), policy: policy, values: values, text: listen.text, place: listen.place)
        if let own = listen.options["exec"], service != .exec {
            throw DaemonError(
                .configuration, "\(own.place): exec: '\(listen.text)' is no exec listener, so it runs no program")
        }
        if service != .exec, let own = OptionTable.all.lazy.filter({ $0.scope == .execChild })
            .compactMap({ listen.options[$0.key] }).first
        {
            throw DaemonError(
                .configuration, "\(own.place): '\(listen.text)' is no exec listener, so it has no exec children")
        }
        if service == .exec && policy.exec.isEmpty {
            throw DaemonError(
                .configuration, "\(subject): the exec service needs a program (after -- or exec = [...])")
        }
        if policy.waitMode {
            // serverd neither accepts nor reads in wait mode: a rule it cannot apply must not look applied (the program
            // accepts and reads itself; wait-start-limit bounds how often it starts).
            let unenforceable = [
                "allow", "deny", "allow-uid", "allow-gid", "max-per-source", "max-rate", "max-rate-per-source",
            ].filter { name in
                [file?.topLevel, invocation.options, listen.options].contains { $0?[name] != nil }
            }
            if let name = unenforceable.first {
                throw DaemonError(
                    status,
                    "\(subject): in wait mode the program serves the socket itself, so serverd cannot apply \(name) "
                        + "(give the rule to the other listeners only)")
            }
        }
        return declaration
    }

    /// Where each access rule of a layer was written.
    private static func ruleplaces(_ layer: OptionLayer) -> [AccessRule: String] {
        var places: [AccessRule: String] = [:]
        for rule in AccessRule.allCases {
            if let entry = layer[rule.rawValue] { places[rule] = entry.place }
        }
        return places
    }

    /// Refuses two listeners on the same address, which could not both bind, except port 0, where each declaration
    /// gets a port of its own and an ordinal in its identity that a reload matches by.
    private static func checkUnique(_ listeners: inout [ListenerDeclaration]) throws(DaemonError) {
        var first: [ListenerIdentity: ListenerDeclaration] = [:]
        for index in listeners.indices {
            while listeners[index].identity.isEphemeral, first[listeners[index].identity] != nil {
                listeners[index].identity.ordinal += 1
            }
            let listener = listeners[index]
            guard let earlier = first[listener.identity] else {
                first[listener.identity] = listener
                continue
            }
            let earlierPlace = earlier.isCommandLine ? "by an earlier --listen" : "at \(earlier.place)"
            let status: ExitStatus = earlier.isCommandLine && listener.isCommandLine ? .usage : .configuration
            throw DaemonError(status, "\(listener.subject): \(listener.identity) already declared \(earlierPlace)")
        }
    }
}
