import Glibc

/// The C `ctime` form of the current local time, without the newline: `Thu Nov 26 13:55:52 2026`.
func ctimeNow() -> [UInt8] {
    var now = time(nil)
    var buffer = [CChar](repeating: 0, count: 32)
    guard ctime_r(&now, &buffer) != nil else { return [] }
    return buffer.prefix { $0 != 0 && $0 != 0x0A }.map { UInt8(bitPattern: $0) }
}
