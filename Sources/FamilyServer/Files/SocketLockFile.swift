import Glibc
import Synchronization

/// `PATH.lock` beside a Unix socket file: locked (`flock`, exclusive) by the one server that owns
/// the socket path, from before it looks at the path until after it removed its socket file.
///
/// So two servers (two serverd instances) never act on the same path at once: the second finds
/// the lock held and reports the address in use, naming the holder's pid (written in the file),
/// instead of probing the first one's socket and, in a race, replacing it. Locking an old lock
/// file that its holder removed meanwhile would guard nothing: after locking, the name must still
/// stand for the locked file, else it is opened again. The holder removes the file while it still
/// holds the lock.
final class SocketLockFile: Sendable {
    /// The directory holding the lock file (and the socket file).
    let directory: DirectoryHandle
    /// The lock file's name in it: the socket file's name plus `.lock`.
    let name: String
    /// The locked file.
    let identity: FileIdentity
    private let descriptor: Atomic<Int32>

    private init(directory: DirectoryHandle, name: String, identity: FileIdentity, descriptor: Int32) {
        self.directory = directory
        self.name = name
        self.identity = identity
        self.descriptor = Atomic(descriptor)
    }

    deinit {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { close(fd) }
    }

    /// Creates or opens `name` in `directory` (never through a symlink, mode 0600) and locks it.
    /// - Throws: ``SocketError``, with EADDRINUSE when another process holds the lock or when
    ///   the name is something other than a plain file (left alone).
    static func acquire(in directory: DirectoryHandle, name: String, socketPath: String) throws(SocketError) -> SocketLockFile {
        let path = directory.pathOf(name)
        let dirfd = directory.fileDescriptor
        for _ in 0..<100 {
            let flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK
            let fd = openat(dirfd, name, flags, 0o600)
            if fd < 0 {
                let code = errno
                if code == ELOOP {
                    throw SocketError("open", errno: EADDRINUSE, subject: "\(path) (a symbolic link; not followed, left alone)")
                }
                throw SocketError("open", errno: code, subject: path)
            }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1 else {
                close(fd)
                throw SocketError("open", errno: EADDRINUSE, subject: "\(path) (not a plain file with one link; left alone)")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                let holder = lockHolder(fd).map { " by pid \($0)" } ?? ""
                close(fd)
                guard code == EWOULDBLOCK else { throw SocketError("flock", errno: code, subject: path) }
                throw SocketError("flock", errno: EADDRINUSE, subject: "\(socketPath) (in use by another instance: \(path) is locked\(holder))")
            }
            let identity = FileIdentity(info)
            guard directory.names(name, identity) else {
                close(fd)
                continue
            }
            let text = Array("\(getpid())\n".utf8)
            if ftruncate(fd, 0) == 0 {
                _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            }
            return SocketLockFile(directory: directory, name: name, identity: identity, descriptor: fd)
        }
        throw SocketError("flock", errno: EAGAIN, subject: "\(path) (replaced again and again while being locked)")
    }

    /// Takes over a lock file that another process acquired and passed down (its open file description, whose
    /// `flock` the receiver now shares): `fd` must be a plain file that `name` in `directory` still stands for. The
    /// lock is taken again on the shared description (which cannot block: it holds it already), and this process's
    /// pid is written in it. On failure `fd` is left open, for the caller to close.
    /// - Throws: ``SocketError`` with ESTALE when `fd` is not the file `name` stands for.
    static func adopt(_ fd: Int32, in directory: DirectoryHandle, name: String) throws(SocketError) -> SocketLockFile {
        let path = directory.pathOf(name)
        let identity = try FileIdentity(descriptor: fd, subject: path)
        guard identity.type == S_IFREG, directory.names(name, identity) else {
            throw SocketError("fstat", errno: ESTALE, subject: "\(path) (the passed lock file is not the one at this path)")
        }
        _ = try syscall("flock", subject: path) { flock(fd, LOCK_EX | LOCK_NB) }
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        _ = ftruncate(fd, off_t(text.count))
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return SocketLockFile(directory: directory, name: name, identity: identity, descriptor: fd)
    }

    /// The locked descriptor, to pass to the process that takes the socket over; -1 once released.
    var fileDescriptor: Int32 { descriptor.load(ordering: .acquiring) }

    /// The pid the holder wrote in the lock file, if any.
    private static func lockHolder(_ fd: Int32) -> pid_t? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return pid_t(String(decoding: buffer.prefix(count), as: UTF8.self).filter(\.isNumber))
    }

    /// Unlocks and closes the file, first removing it (only if its name still stands for it)
    /// when `removing`. Later calls do nothing.
    /// - Throws: ``SocketError`` for `unlinkat`; the lock is released all the same.
    func release(removing: Bool) throws(SocketError) {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        guard fd >= 0 else { return }
        defer { close(fd) }
        if removing {
            try directory.remove(name, ifStill: identity)
        }
    }
}
