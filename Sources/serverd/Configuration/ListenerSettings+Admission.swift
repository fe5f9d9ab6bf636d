extension ListenerSettings {
    /// Whether an inet peer may be served: not in a ``deny`` block, and in an ``allow`` block when any is given.
    /// - Parameter addressBytes: The peer's address in network byte order, 4 or 16 bytes; an IPv4-mapped IPv6
    ///   address is matched as IPv4.
    func admits(address addressBytes: [UInt8]) -> Bool {
        if deny.contains(where: { $0.contains(addressBytes) }) {
            return false
        }
        return allow.isEmpty || allow.contains(where: { $0.contains(addressBytes) })
    }

    /// Whether a Unix peer may be served: everyone when neither ``allowUIDs`` nor ``allowGIDs`` is given, otherwise
    /// a peer whose uid or gid is listed.
    /// - Parameters:
    ///   - uid: The peer's uid (SO_PEERCRED or SCM_CREDENTIALS).
    ///   - gid: The peer's gid.
    func admits(uid: UInt32, gid: UInt32) -> Bool {
        if allowUIDs == nil && allowGIDs == nil {
            return true
        }
        return allowUIDs?.contains(uid) == true || allowGIDs?.contains(gid) == true
    }
}
