import Glibc

/// Reads a whole text file with open(2) and read(2), up to ``maximumSize``.
enum TextFile {
    /// The largest file read, 1 MiB: far more than any configuration needs, and a bound on what `--config /dev/zero`
    /// or a runaway generator can make serverd read and parse.
    static let maximumSize = 1 << 20

    /// Reads a file.
    /// - Parameter path: The file's path.
    /// - Returns: The content, as bytes: the TOML parser checks the encoding and reports where it is wrong.
    /// - Throws: ``DaemonError`` with status `.configuration` naming the path and the system's reason when the file
    ///   cannot be opened or read, or is larger than ``maximumSize``.
    static func read(_ path: String) throws(DaemonError) -> [UInt8] {
        // O_NONBLOCK: a FIFO with no writer must not hang a start or a reload (it reads as empty).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw failure(path, "cannot open", errno: errno)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes.append(contentsOf: chunk[..<count])
                guard bytes.count <= maximumSize else {
                    throw DaemonError(.configuration, "\(path): larger than \(maximumSize) bytes, the most serverd reads")
                }
            } else if count == 0 {
                break
            } else if errno != EINTR {
                throw failure(path, "cannot read", errno: errno)
            }
        }
        return bytes
    }

    /// The error for a failed call: `PATH: cannot open: No such file or directory`. Like every configuration error it
    /// reports EINVAL to systemd, not the call's errno (SPEC section 3, "systemd").
    private static func failure(_ path: String, _ what: String, errno code: Int32) -> DaemonError {
        DaemonError(.configuration, "\(path): \(what): \(String(cString: strerror(code)))")
    }
}
