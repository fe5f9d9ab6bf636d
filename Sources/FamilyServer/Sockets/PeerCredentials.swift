import Glibc

/// The process, user and group at the other end of a Unix socket, as the kernel reports them
/// (SO_PEERCRED on a stream connection, SCM_CREDENTIALS on a datagram).
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    /// The peer's process id.
    public var pid: pid_t
    /// The peer's effective user id.
    public var uid: uid_t
    /// The peer's effective group id.
    public var gid: gid_t

    /// Creates credentials from their parts.
    public init(pid: pid_t, uid: uid_t, gid: gid_t) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// `pid=P uid=U gid=G`, for messages.
    public var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }
}
