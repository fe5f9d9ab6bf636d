import SystemPackage

/// Reads a whole text file, up to ``maximumSize``.
enum TextFile {
    /// The largest file read, 1 MiB: far more than any configuration needs, and a bound on what `--config /dev/zero`
    /// or a runaway generator can make serverd read and parse.
    static let maximumSize = 1 << 20

    /// Reads a file.
    /// - Parameter path: The file's path.
    /// - Returns: The content, as bytes: the TOML parser checks the encoding and reports where it is wrong.
    /// - Throws: ``DaemonError`` with status `.configuration` naming the path and the system's reason when the file
    ///   cannot be opened or read, or is larger than ``maximumSize``. Like every configuration error it reports EINVAL
    ///   to systemd, not the call's errno (SPEC section 3, "systemd").
    static func read(_ path: String) throws(DaemonError) -> [UInt8] {
        let file: FileDescriptor
        do {
            // Non-blocking: a FIFO with no writer must not hang a start or a reload (it reads as empty).
            file = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking])
        } catch {
            throw DaemonError(.configuration, "\(path): cannot open: \(error)")
        }
        defer { try? file.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try file.read(into: $0) }
            } catch {
                throw DaemonError(.configuration, "\(path): cannot read: \(error)")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= maximumSize else {
                throw DaemonError(.configuration, "\(path): larger than \(maximumSize) bytes, the most serverd reads")
            }
        }
        return bytes
    }
}
