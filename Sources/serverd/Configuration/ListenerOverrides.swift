/// The per-listener options one source gives (the command line, the file's top level or a `[[listener]]` table);
/// `nil` where that source is silent.
struct ListenerOverrides: Equatable, Sendable {
    /// `exec`, `-- PROGRAM ARGS…`: the program and its arguments.
    var exec: [String]?
    /// `socket-mode`.
    var socketMode: UInt32?
    /// `allow-uid`.
    var allowUIDs: [UInt32]?
    /// `allow-gid`.
    var allowGIDs: [UInt32]?
    /// `allow`.
    var allow: [CIDRBlock]?
    /// `deny`.
    var deny: [CIDRBlock]?
    /// `max-connections`.
    var maxConnections: Int?
    /// `max-per-source`.
    var maxPerSource: Int?
    /// `idle-timeout`, in seconds.
    var idleTimeout: Double?
    /// `max-line`, in bytes.
    var maxLine: Int?
    /// `request-timeout`, in seconds.
    var requestTimeout: Double?
    /// `min-rate`, in bytes per second.
    var minRate: Int?
    /// `source-prefix-v4`, in bits.
    var sourcePrefixV4: Int?
    /// `source-prefix-v6`, in bits.
    var sourcePrefixV6: Int?
    /// `reply-rate-per-source`, in replies per second.
    var replyRatePerSource: Int?

    /// The access rules these options set, in the order of ``AccessRule/allCases``.
    var accessRules: [AccessRule] {
        AccessRule.allCases.filter { rule in
            switch rule {
            case .allow: return allow != nil
            case .deny: return deny != nil
            case .allowUID: return allowUIDs != nil
            case .allowGID: return allowGIDs != nil
            }
        }
    }

    /// These values, with `fallback`'s wherever these are `nil`.
    func overriding(_ fallback: ListenerOverrides) -> ListenerOverrides {
        ListenerOverrides(
            exec: exec ?? fallback.exec,
            socketMode: socketMode ?? fallback.socketMode,
            allowUIDs: allowUIDs ?? fallback.allowUIDs,
            allowGIDs: allowGIDs ?? fallback.allowGIDs,
            allow: allow ?? fallback.allow,
            deny: deny ?? fallback.deny,
            maxConnections: maxConnections ?? fallback.maxConnections,
            maxPerSource: maxPerSource ?? fallback.maxPerSource,
            idleTimeout: idleTimeout ?? fallback.idleTimeout,
            maxLine: maxLine ?? fallback.maxLine,
            requestTimeout: requestTimeout ?? fallback.requestTimeout,
            minRate: minRate ?? fallback.minRate,
            sourcePrefixV4: sourcePrefixV4 ?? fallback.sourcePrefixV4,
            sourcePrefixV6: sourcePrefixV6 ?? fallback.sourcePrefixV6,
            replyRatePerSource: replyRatePerSource ?? fallback.replyRatePerSource
        )
    }

    /// The settings of a listener of `service`: these values, the built-in defaults where they are `nil`. The
    /// program is kept only for the `exec` service, so that it does not make other listeners differ on reload.
    func settings(for service: ServiceName) -> ListenerSettings {
        let defaults = ListenerSettings()
        return ListenerSettings(
            exec: service == .exec ? exec ?? [] : [],
            socketMode: socketMode,
            allowUIDs: allowUIDs,
            allowGIDs: allowGIDs,
            allow: allow,
            deny: deny ?? defaults.deny,
            maxConnections: maxConnections ?? defaults.maxConnections,
            maxPerSource: maxPerSource,
            idleTimeout: idleTimeout ?? defaults.idleTimeout,
            maxLine: maxLine ?? defaults.maxLine,
            requestTimeout: requestTimeout ?? defaults.requestTimeout,
            minRate: minRate ?? defaults.minRate,
            sourcePrefixV4: sourcePrefixV4 ?? defaults.sourcePrefixV4,
            sourcePrefixV6: sourcePrefixV6 ?? defaults.sourcePrefixV6,
            replyRatePerSource: replyRatePerSource ?? defaults.replyRatePerSource
        )
    }
}
