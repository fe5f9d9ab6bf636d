extension ServerdCommand {
    /// The per-listener options the command line gives, `nil` where it is silent.
    var listenerOverrides: ListenerOverrides {
        ListenerOverrides(
            exec: program.isEmpty ? nil : program,
            socketMode: socketMode,
            allowUIDs: allowUID.isEmpty ? nil : allowUID.flatMap { $0 },
            allowGIDs: allowGID.isEmpty ? nil : allowGID.flatMap { $0 },
            allow: allow.isEmpty ? nil : allow.flatMap { $0 },
            deny: deny.isEmpty ? nil : deny.flatMap { $0 },
            maxConnections: maxConnections,
            maxPerSource: maxPerSource,
            idleTimeout: idleTimeout,
            maxLine: maxLine,
            requestTimeout: clientLimits.requestTimeout,
            minRate: clientLimits.minRate,
            sourcePrefixV4: clientLimits.sourcePrefixV4,
            sourcePrefixV6: clientLimits.sourcePrefixV6,
            replyRatePerSource: clientLimits.replyRatePerSource
        )
    }

    /// The daemon-wide options the command line gives, `nil` where it is silent.
    var daemonOverrides: DaemonOverrides {
        DaemonOverrides(
            model: model,
            drainTimeout: drainTimeout,
            daemonize: daemon ? true : nil,
            pidfile: pidfile,
            user: user,
            group: group,
            logLevel: logLevel,
            logFile: logFile
        )
    }
}
