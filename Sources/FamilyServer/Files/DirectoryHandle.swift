import CShims
import Glibc
import Synchronization

/// An `cshims_o_path` descriptor of a directory, through which the files serverd creates in it (socket
/// files, their lock files, the pidfile) are found, opened and removed by name relative to it and
/// never through a symlink in their last component: `fstatat(AT_SYMLINK_NOFOLLOW)`, `openat(O_NOFOLLOW)`,
/// `unlinkat`. Whatever later happens to the directory's own path, the calls stay in the directory
/// that was opened.
public final class DirectoryHandle: Sendable, CustomStringConvertible {
    /// The directory's path as given (for messages).
    public let path: String
    private let descriptor: Atomic<Int32>

    /// Opens the directory `path` (`cshims_o_path | O_DIRECTORY | O_CLOEXEC`).
    /// - Throws: ``SocketError`` for `open`.
    public init(path: String) throws(SocketError) {
        let fd = try syscall("open", subject: path) { open(path, cshims_o_path | O_DIRECTORY | O_CLOEXEC) }
        self.path = path
        descriptor = Atomic(fd)
    }

    /// Splits `path` into its directory (`.` when it has none, `/` for a file at the root) and its
    /// last component.
    public static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    deinit { close() }

    /// The descriptor, or -1 once closed.
    public var fileDescriptor: Int32 { descriptor.load(ordering: .acquiring) }

    /// The directory's path, as it was opened.
    public var description: String { path }

    /// `name` inside this directory as a path, for messages.
    public func pathOf(_ name: String) -> String { path == "/" ? "/\(name)" : "\(path)/\(name)" }

    /// What `name` stands for now, without following a symlink; `nil` when nothing does.
    /// - Throws: ``SocketError`` for `fstatat` failing otherwise than ENOENT.
    public func status(of name: String) throws(SocketError) -> stat? {
        var info = stat()
        let fd = fileDescriptor
        if fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 { return info }
        let code = errno
        if code == ENOENT { return nil }
        throw SocketError("fstatat", errno: code, subject: pathOf(name))
    }

    /// Whether `name` still stands for `identity`.
    public func names(_ name: String, _ identity: FileIdentity) -> Bool {
        guard let info = try? status(of: name) else { return false }
        return FileIdentity(info) == identity
    }

    /// Removes `name` (`unlinkat`, `AT_REMOVEDIR` for a directory) if it still stands for
    /// `identity`; anything else at that name is left alone.
    /// - Returns: whether it was removed.
    /// - Throws: ``SocketError`` for `unlinkat` (EACCES or EPERM once privileges are dropped,
    ///   ENOTEMPTY for a directory that is not empty).
    @discardableResult
    public func remove(_ name: String, ifStill identity: FileIdentity) throws(SocketError) -> Bool {
        guard names(name, identity) else { return false }
        let fd = fileDescriptor
        let flags = identity.type == S_IFDIR ? AT_REMOVEDIR : 0
        _ = try syscall("unlinkat", subject: pathOf(name)) { unlinkat(fd, name, flags) }
        return true
    }

    /// Closes the descriptor; later calls do nothing.
    public func close() {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { _ = Glibc.close(fd) }
    }
}
