import Glibc
import SystemPackage

/// Reading /proc, the one way serverd does it: the numeric entries of a directory (processes, threads, descriptors)
/// and the bytes of a small file. Plain open/read/readdir calls, no Foundation: a forked worker uses them too.
enum ProcFiles {
    /// The entries of `path` whose names are decimal numbers; `nil` (with errno) if the directory cannot be opened.
    /// - Parameter skippingOwnDescriptor: Leave out the descriptor of the directory stream itself (when listing
    ///   `/proc/self/fd`).
    static func numericEntries(of path: String, skippingOwnDescriptor: Bool = false) -> [Int32]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        let own = skippingOwnDescriptor ? dirfd(directory) : -1
        var numbers: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let number = Int32(name), number >= 0, number != own { numbers.append(number) }
        }
        return numbers
    }

    /// Up to `limit` bytes of a file; `nil` (with errno) if it cannot be opened or read.
    static func read(_ path: String, limit: Int = 64 * 1024) -> [UInt8]? {
        do {
            let file = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
            defer { try? file.close() }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while bytes.count < limit {
                let count = try chunk.withUnsafeMutableBytes { try file.read(into: $0) }
                if count == 0 { break }
                bytes += chunk[0..<min(count, limit - bytes.count)]
            }
            return bytes
        } catch {
            errno = (error as? Errno)?.rawValue ?? EIO
            return nil
        }
    }
}
