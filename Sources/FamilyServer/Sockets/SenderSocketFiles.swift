import Glibc

/// The socket file of a Unix datagram sender, held open with `O_PATH` so that replies reach that
/// very inode through `/proc/self/fd/N`; closed when the last user lets go.
final class SenderSocketFile: Sendable {
    /// The `O_PATH` descriptor.
    let descriptor: Int32
    private let device: UInt64
    private let inode: UInt64

    /// Takes ownership of `descriptor`, an `O_PATH` descriptor of a socket file.
    init(descriptor: Int32) {
        var info = stat()
        fstat(descriptor, &info)
        self.descriptor = descriptor
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    deinit { close(descriptor) }

    /// Whether the file is still a socket owned by `uid`, and `path` (absolute) still leads to it.
    /// (Where `path` leads through does not matter: the reply goes to this inode, which belongs to
    /// the sender's uid.)
    func stillServes(_ path: String, uid: uid_t) -> Bool {
        var held = stat()
        var named = stat()
        guard fstat(descriptor, &held) == 0, held.st_mode & S_IFMT == S_IFSOCK, held.st_uid == uid,
            stat(path, &named) == 0
        else { return false }
        return UInt64(named.st_dev) == device && UInt64(named.st_ino) == inode
    }
}

/// The sender socket files verified lately, by absolute path: a reply to a sender seen before
/// needs two `stat` calls instead of a walk of its path. Bounded (forgotten wholesale when full),
/// and short-lived: ``releaseIdle(after:)`` closes what went unused, so that a burst of replies
/// leaves no descriptor behind.
enum SenderSocketFiles {
    private static let capacity = 256
    private static let files = ConditionLock<[String: (file: SenderSocketFile, used: Double)]>([:])

    /// The verified file for `path` if it still serves the sender `uid`.
    static func lookup(_ path: String, uid: uid_t) -> SenderSocketFile? {
        let now = MonotonicClock.seconds()
        guard let file = files.withLock({ files -> SenderSocketFile? in
            files[path]?.used = now
            return files[path]?.file
        }) else { return nil }
        if file.stillServes(path, uid: uid) { return file }
        files.withLock { if $0[path]?.file === file { $0[path] = nil } }
        return nil
    }

    /// Remembers a file that the full check verified for `path`.
    static func remember(_ file: SenderSocketFile, for path: String) {
        let now = MonotonicClock.seconds()
        files.withLock { files in
            if files.count >= capacity && files[path] == nil { files.removeAll(keepingCapacity: true) }
            files[path] = (file, now)
        }
    }

    /// Forgets (and so closes, once no reply holds it) every file unused for `seconds`.
    static func releaseIdle(after seconds: Double) {
        let now = MonotonicClock.seconds()
        files.withLock { files in
            guard files.values.contains(where: { now - $0.used >= seconds }) else { return }
            files = files.filter { now - $0.value.used < seconds }
        }
    }
}
