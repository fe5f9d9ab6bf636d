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
            maxLine: maxLine ?? fallback.maxLine
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
            allow: allow ?? defaults.allow,
            deny: deny ?? defaults.deny,
            maxConnections: maxConnections ?? defaults.maxConnections,
            maxPerSource: maxPerSource,
            idleTimeout: idleTimeout ?? defaults.idleTimeout,
            maxLine: maxLine ?? defaults.maxLine
        )
    }
}
