import CShims
import Glibc

/// A Unix socket file this process created with `bind`: found again through a descriptor of its
/// directory, remembered by device and inode, and guarded by its lock file (`PATH.lock`, see
/// `SocketLockFile`) from the moment its path is examined until the file is removed.
///
/// Nothing is ever done by a path whose last component can be a symlink: examining and removing
/// go through `fstatat(AT_SYMLINK_NOFOLLOW)` and `unlinkat` on the directory descriptor, only a
/// socket is ever removed, and only while it is still the same inode.
public final class UnixSocketFile: Sendable {
    /// The path the socket was bound to.
    public let path: String
    /// The directory holding the socket file and its lock file.
    public let directory: DirectoryHandle
    /// The socket file's name in ``directory``.
    public let name: String
    /// The socket file that `bind` created.
    public let identity: FileIdentity
    private let lock: SocketLockFile

    /// The lock file's name in ``directory``.
    public var lockName: String { lock.name }
    /// The lock file this server holds.
    public var lockIdentity: FileIdentity { lock.identity }

    private init(path: String, name: String, identity: FileIdentity, lock: SocketLockFile) {
        self.path = path
        self.directory = lock.directory
        self.name = name
        self.identity = identity
        self.lock = lock
    }

    /// Binds `socket` at `path`, the file appearing with the permission bits `mode` (exactly,
    /// whatever the umask) or, without a `mode`, those the umask leaves.
    ///
    /// With a `mode`, the socket's inode gets it by `fchmod` and `bind` runs on a thread of its
    /// own whose umask is 0 (see `cshims_bind_umask0`): the file never exists with other bits,
    /// and no `chmod` by path follows.
    ///
    /// Under the lock, a stale socket file at `path` (nothing accepts or receives on it) is
    /// replaced; a live one is "address in use"; anything that is not a socket (a regular file,
    /// a directory, a symlink) is never followed or deleted and is reported as in use.
    static func bind(_ socket: Socket, at address: SocketAddress, path: String, mode: mode_t?) throws(SocketError) -> UnixSocketFile {
        try Socket.checkUnixName(address, call: "bind")
        let (directoryPath, name) = DirectoryHandle.split(path)
        let directory = try DirectoryHandle(path: directoryPath)
        let lock: SocketLockFile
        do {
            lock = try SocketLockFile.acquire(in: directory, name: name + ".lock", socketPath: path)
        } catch {
            directory.close()
            throw error
        }
        do throws(SocketError) {
            try clearStale(in: directory, name: name, path: path, transport: socket.transport)
            if let mode {
                let fd = socket.fileDescriptor
                _ = try syscall("fchmod", subject: path) { fchmod(fd, mode) }
                _ = try address.withSockAddr { (sa, length) throws(SocketError) in
                    try syscall("bind", subject: address.description) { cshims_bind_umask0(fd, sa, length) }
                }
            } else {
                try socket.bind(to: address)
            }
            guard let info = try directory.status(of: name), info.st_mode & S_IFMT == S_IFSOCK else {
                throw SocketError("fstatat", errno: ENOENT, subject: "\(path) (the socket file vanished right after bind)")
            }
            return UnixSocketFile(path: path, name: name, identity: FileIdentity(info), lock: lock)
        } catch {
            try? lock.release(removing: true)
            directory.close()
            throw error
        }
    }

    /// Takes over the socket file of `socket`, bound at `path` by another process: one that passed the socket down
    /// together with the descriptor of its locked `PATH.lock` (`lockDescriptor`, see ``lockDescriptor``) at a
    /// binary upgrade, or one that is gone and left the socket in systemd's fd store (`lockDescriptor` `nil`: the
    /// lock is taken anew, and fails with EADDRINUSE when another live process holds it). From then on this process
    /// removes the file when it closes the socket, as if it had bound it; the path is never missing meanwhile.
    ///
    /// The socket must be bound to `path` (its `getsockname`), a lock descriptor must be the file `PATH.lock`
    /// stands for, and the socket file must still be a socket. On failure `lockDescriptor` is left open.
    /// - Throws: ``SocketError`` naming the path and the check that failed (ENOENT: no socket file at `path`).
    public static func adopt(_ socket: Socket, path: String, lockDescriptor: Int32?) throws(SocketError) -> UnixSocketFile {
        guard (try? socket.localAddress().path) == path else {
            throw SocketError("getsockname", errno: EINVAL, subject: "\(path) (the passed socket is not bound there)")
        }
        let (directoryPath, name) = DirectoryHandle.split(path)
        let directory = try DirectoryHandle(path: directoryPath)
        do throws(SocketError) {
            guard let info = try directory.status(of: name), info.st_mode & S_IFMT == S_IFSOCK else {
                throw SocketError("fstatat", errno: ENOENT, subject: "\(path) (no socket file to take over)")
            }
            let lock = if let lockDescriptor {
                try SocketLockFile.adopt(lockDescriptor, in: directory, name: name + ".lock")
            } else {
                try SocketLockFile.acquire(in: directory, name: name + ".lock", socketPath: path)
            }
            return UnixSocketFile(path: path, name: name, identity: FileIdentity(info), lock: lock)
        } catch {
            directory.close()
            throw error
        }
    }

    /// The descriptor of the locked `PATH.lock`, to pass with the socket to a process that takes it over
    /// (``adopt(_:path:lockDescriptor:)``); -1 once released.
    public var lockDescriptor: Int32 { lock.fileDescriptor }

    /// Leaves the socket file and its lock file in place for the process that took them over: closes this
    /// process's descriptors (the lock stays held through the other process's copy) without removing anything.
    /// Later calls, and a later ``remove()``, do nothing.
    public func relinquish() {
        try? lock.release(removing: false)
        directory.close()
    }

    /// Removes a socket file named `name` in `directory` only if it is a socket that nothing serves.
    ///
    /// The probe connects, without blocking, to exactly the inode that was examined (through an
    /// `cshims_o_path` descriptor of it and `/proc/self/fd`, so a symlink swapped in meanwhile is not
    /// what gets probed), and only ECONNREFUSED means that nothing is bound there. A live stream
    /// socket whose backlog is full answers EAGAIN at once, and a live socket of the other type
    /// (stream vs datagram) answers EPROTOTYPE: both are "address in use".
    private static func clearStale(
        in directory: DirectoryHandle, name: String, path: String, transport: SocketAddress.Transport
    ) throws(SocketError) {
        guard let info = try directory.status(of: name) else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketError("bind", errno: EADDRINUSE, subject: "\(path) (exists and is not a socket; left alone)")
        }
        let identity = FileIdentity(info)
        let target = openat(directory.fileDescriptor, name, cshims_o_path | O_NOFOLLOW | O_CLOEXEC)
        guard target >= 0 else {
            if errno == ENOENT { return }
            throw SocketError("open", errno: errno, subject: path)
        }
        defer { close(target) }
        guard (try? FileIdentity(descriptor: target, subject: path)) == identity else {
            throw SocketError("bind", errno: EADDRINUSE, subject: "\(path) (replaced while being examined; left alone)")
        }
        let probe = try Socket(family: AF_UNIX, transport: transport)
        defer { probe.close() }
        try probe.setNonBlocking(true)
        let viaProc = "/proc/self/fd/\(target)"
        let probed = access("/proc/self/fd", F_OK) == 0 ? viaProc : path
        do {
            try probe.connect(to: SocketAddress(transport, .unixPath(probed)))
        } catch {
            switch error.errno {
            case ECONNREFUSED:
                try directory.remove(name, ifStill: identity)
                return
            case EAGAIN, EPROTOTYPE:
                break
            default:
                throw SocketError(error.syscall, errno: error.errno, subject: "\(path) (probing whether a process serves it)")
            }
        }
        throw SocketError("bind", errno: EADDRINUSE, subject: "\(path) (another process serves it)")
    }

    /// Sets the socket file's permission bits (a reload that changed the socket mode), if the file
    /// is still the one this process created. The file is opened with `O_PATH|O_NOFOLLOW` through
    /// the directory descriptor, checked by identity, and changed through `/proc/self/fd`: a name
    /// swapped for a symlink meanwhile is never followed.
    /// - Throws: ``SocketError`` for `openat` or `chmod`, or ESTALE when the name now stands for
    ///   another file.
    public func setMode(_ mode: mode_t) throws(SocketError) {
        let fd = openat(directory.fileDescriptor, name, cshims_o_path | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SocketError("openat", errno: errno, subject: path) }
        defer { close(fd) }
        guard try FileIdentity(descriptor: fd, subject: path) == identity else {
            throw SocketError("chmod", errno: ESTALE, subject: "\(path) (no longer the socket serverd created; left alone)")
        }
        _ = try syscall("chmod", subject: path) { chmod("/proc/self/fd/\(fd)", mode) }
    }

    /// Removes the socket file if it is still the one this process created, then its lock file,
    /// and releases the lock. Call once the socket is closed; later calls do nothing.
    /// - Throws: ``SocketError`` for `unlinkat` (EACCES or EPERM after privileges were dropped);
    ///   the lock is released and the descriptors closed all the same.
    public func remove() throws(SocketError) {
        defer { directory.close() }
        do {
            try directory.remove(name, ifStill: identity)
        } catch {
            try? lock.release(removing: false)
            throw error
        }
        try lock.release(removing: true)
    }
}
