import Glibc

/// Which file a name stood for when it was checked: device, inode and file type. A name is
/// acted on again (removed) only while it still stands for the same identity, so that a file
/// put in its place meanwhile (by another process, or a local attacker) is left alone.
public struct FileIdentity: Sendable, Equatable, CustomStringConvertible {
    /// `st_dev`.
    public let device: UInt
    /// `st_ino`.
    public let inode: UInt
    /// The `S_IFMT` bits of `st_mode`: `S_IFSOCK`, `S_IFREG`, `S_IFDIR`, …
    public let type: mode_t

    /// The identity `stat` describes.
    public init(_ info: stat) {
        device = UInt(info.st_dev)
        inode = UInt(info.st_ino)
        type = info.st_mode & S_IFMT
    }

    /// The identity of the file an open descriptor refers to.
    /// - Throws: ``SocketError`` for `fstat`.
    public init(descriptor fd: Int32, subject: String) throws(SocketError) {
        var info = stat()
        _ = try syscall("fstat", subject: subject) { fstat(fd, &info) }
        self.init(info)
    }

    /// `device D inode I`, for messages.
    public var description: String { "device \(device) inode \(inode)" }
}
