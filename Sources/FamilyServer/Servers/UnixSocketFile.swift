import Glibc

/// A Unix socket file this process created with `bind`, remembered by device and inode so that it
/// is removed only while it is still the same file.
struct UnixSocketFile: Sendable {
    /// The path the socket was bound to.
    let path: String
    private let device: UInt
    private let inode: UInt

    /// Binds `socket` at `path` so that no client can reach it with more access than `mode` gives.
    ///
    /// With a `mode`, the socket's own inode gets the mode before `bind`, which creates the file
    /// with that mode less the umask; a `chmod` then sets the exact bits. Until that `chmod` the
    /// file is at most as open as `mode`, never more, and it never has another name.
    ///
    /// A stale socket file at `path` (nothing accepts or receives on it) is replaced; a live one
    /// is "address in use"; anything that is not a socket (a regular file, a directory, a symlink)
    /// is never followed or deleted and is reported as in use.
    static func bind(_ socket: Socket, at address: SocketAddress, path: String, mode: mode_t?) throws(SocketError) -> UnixSocketFile {
        try clearStale(at: path, transport: socket.transport)
        if let mode {
            let fd = socket.fileDescriptor
            _ = try syscall("fchmod", subject: path) { fchmod(fd, mode) }
        }
        try socket.bind(to: address)
        let file = try remember(path)
        if let mode {
            do {
                _ = try syscall("chmod", subject: path) { chmod(path, mode) }
            } catch {
                try? file.remove()
                throw error
            }
        }
        return file
    }

    private static func remember(_ path: String) throws(SocketError) -> UnixSocketFile {
        var info = stat()
        _ = try syscall("lstat", subject: path) { lstat(path, &info) }
        return UnixSocketFile(path: path, device: UInt(info.st_dev), inode: UInt(info.st_ino))
    }

    /// Removes a socket file at `path` only if it is a socket that nothing serves.
    ///
    /// The probe connects without blocking, and only ECONNREFUSED means that nothing is bound
    /// there. A live stream socket whose backlog is full answers EAGAIN at once (a blocking probe
    /// would wait until it accepts, forever if it never does), and a live socket of the other type
    /// (stream vs datagram) answers EPROTOTYPE: both are "address in use".
    static func clearStale(at path: String, transport: SocketAddress.Transport) throws(SocketError) {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return }
            throw SocketError("lstat", errno: errno, subject: path)
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketError("bind", errno: EADDRINUSE, subject: "\(path) (exists and is not a socket; left alone)")
        }
        let probe = try Socket(family: AF_UNIX, transport: transport)
        defer { probe.close() }
        try probe.setNonBlocking(true)
        do {
            try probe.connect(to: SocketAddress(transport, .unixPath(path)))
        } catch {
            switch error.errno {
            case ECONNREFUSED:
                unlink(path)
                return
            case EAGAIN, EPROTOTYPE:
                break
            default:
                throw error
            }
        }
        throw SocketError("bind", errno: EADDRINUSE, subject: "\(path) (another process serves it)")
    }

    /// Unlinks the file if it is still the one this process created.
    /// - Throws: ``SocketError`` for `unlink` (e.g. EACCES after privileges were dropped).
    func remove() throws(SocketError) {
        var info = stat()
        guard lstat(path, &info) == 0, UInt(info.st_dev) == device, UInt(info.st_ino) == inode else { return }
        _ = try syscall("unlink", subject: path) { unlink(path) }
    }
}
