extension DaemonConfiguration {
    /// Builds the configuration from the command line and, with `--config`, the file it names. Start-up,
    /// `--check-config` and every reload call this; a reload reads the file again with the same command line.
    ///
    /// Per-listener options come from the listener's own `[[listener]]` table, else the command line, else the file's
    /// top level, else the built-in default; daemon-wide options from the command line, else the file, else the
    /// default. `--listen` adds listeners after the file's. An `exec` listener's program is its table's `exec`, else
    /// the command line's `-- PROGRAM ARGS`, else the file's top-level `exec`.
    ///
    /// - Parameter command: The parsed command line.
    /// - Returns: The configuration; its listeners may be empty (the daemon then serves inherited sockets or the
    ///   built-in set).
    /// - Throws: ``DaemonError`` with status `.configuration` for an unreadable or invalid file (naming `FILE:LINE`
    ///   and the key), for an `exec` listener without a program, for a listener declared twice in the file, or for an
    ///   access rule of the file that cannot apply (see ``AccessRuleSource``); with status `.usage` for a listener
    ///   given twice on the command line or a command-line access rule that cannot apply.
    static func load(from command: ServerdCommand) throws(DaemonError) -> DaemonConfiguration {
        var file: ConfigurationFile?
        if let path = command.config {
            file = try ConfigurationFile(path: path)
        }
        let listenerBase = command.listenerOverrides.overriding(file?.listenerOptions ?? ListenerOverrides())
        var listeners: [ListenerConfiguration] = []
        var rulePlaces: [[AccessRule: String]] = []
        for declared in file?.listeners ?? [] {
            listeners.append(
                try listener(declared.spec, declared.overrides.overriding(listenerBase), origin: declared.origin))
            rulePlaces.append(declared.rulePlaces)
        }
        for spec in command.listen {
            listeners.append(try listener(spec, listenerBase, origin: "--listen"))
            rulePlaces.append([:])
        }
        try checkUnique(listeners)
        let sources = AccessRuleSource.sources(
            of: listeners.indices.map { (listeners[$0].address, rulePlaces[$0]) },
            commandLine: command.listenerOverrides.accessRules, topLevel: file?.rulePlaces ?? [:])
        for index in listeners.indices {
            listeners[index].accessRules = sources[index]
            if let family = ListenerFamily(address: listeners[index].address) {
                try listeners[index].checkAccessRules(for: family)
            }
        }

        let options = command.daemonOverrides.overriding(file?.daemonOptions ?? DaemonOverrides())
        return DaemonConfiguration(
            listeners: listeners,
            model: options.model ?? ModelName.defaultModel,
            drainTimeout: options.drainTimeout ?? defaultDrainTimeout,
            daemonize: options.daemonize ?? false,
            pidfile: options.pidfile,
            user: options.user,
            group: options.group,
            logLevel: options.logLevel ?? LogLevelName.defaultLevel,
            logFile: options.logFile,
            configFile: command.config,
            checkConfig: command.checkConfig
        )
    }

    /// A listener with its options resolved.
    /// - Throws: ``DaemonError`` with status `.configuration` for an `exec` listener without a program.
    private static func listener(
        _ spec: ListenSpec, _ overrides: ListenerOverrides, origin: String
    ) throws(DaemonError) -> ListenerConfiguration {
        let listener = ListenerConfiguration(
            service: spec.service, address: spec.address, settings: overrides.settings(for: spec.service),
            origin: origin)
        if spec.service == .exec && listener.settings.exec.isEmpty {
            throw DaemonError(
                .configuration, "\(listener.text): the exec service needs a program (after -- or exec = [...])")
        }
        return listener
    }

    /// Refuses two listeners with the same `SERVICE@ADDRESS`: reload tells listeners apart by that text.
    /// - Throws: ``DaemonError`` naming the listener and both places (`--listen 'echo@unix:x': already declared at
    ///   serverd.toml:3`), with status `.usage` when both are `--listen`, else `.configuration`.
    private static func checkUnique(_ listeners: [ListenerConfiguration]) throws(DaemonError) {
        var firstOrigin: [String: String] = [:]
        for listener in listeners {
            guard let earlier = firstOrigin[listener.text] else {
                firstOrigin[listener.text] = listener.origin
                continue
            }
            let place = listener.origin == "--listen" ? "--listen" : "\(listener.origin): listen"
            let status: ExitStatus = earlier == "--listen" && listener.origin == "--listen" ? .usage : .configuration
            let earlierPlace = earlier == "--listen" ? "by an earlier --listen" : "at \(earlier)"
            throw DaemonError(status, "\(place) '\(listener.text)': already declared \(earlierPlace)")
        }
    }
}
