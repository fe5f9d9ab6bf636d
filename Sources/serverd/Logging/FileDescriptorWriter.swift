import Glibc

/// Writes text to a file descriptor with write(2): no stdio buffer, no shared `FILE *` (which Swift 6 refuses as
/// global mutable state), and one system call for the whole text in the usual case, so that lines written by
/// concurrent threads or processes do not interleave.
enum FileDescriptorWriter {
    /// Writes all of `text`, retrying after EINTR and after a partial write.
    /// - Parameters:
    ///   - text: The text, written as UTF-8.
    ///   - fd: The descriptor, e.g. `STDERR_FILENO`.
    /// - Returns: `false` when write(2) failed (the text may be partly written); logging ignores this, as there is
    ///   nowhere left to report it.
    @discardableResult
    static func write(_ text: String, to fd: Int32) -> Bool {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
    }
}
