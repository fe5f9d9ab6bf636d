extension ListenerPolicy {
    /// Whether an inet peer may be served: not in a ``deny`` block, and in an ``allow`` block when `allow` is given
    /// (an empty `allow` serves no one; the configuration refuses one, so this is only a second line of defence).
    /// - Parameter addressBytes: The peer's address in network byte order, 4 or 16 bytes. An IPv4 peer, or an
    ///   IPv4-mapped one (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers), is in an IPv4 block that holds
    ///   its address and in an IPv6 block that holds its mapped form (`::/0`, `::ffff:0:0/96`).
    ///   Asked for only when a block is listed.
    func admits(address addressBytes: @autoclosure () -> [UInt8]) -> Bool {
        guard !deny.isEmpty || allow != nil else { return true }
        let addressBytes = addressBytes()
        if deny.contains(where: { $0.contains(addressBytes) }) {
            return false
        }
        guard let allow else { return true }
        return allow.contains(where: { $0.contains(addressBytes) })
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
