import CShims
import Glibc

/// Calls a C function that returns -1 and sets errno on failure, retrying while it fails with EINTR.
///
/// errno is read through the C shim right after the call, before any Swift code could clobber it.
/// - Returns: the function's non-negative result.
/// - Throws: ``SocketError`` naming `name` and carrying errno.
@inline(__always)
func syscall<T: FixedWidthInteger>(
    _ name: String, subject: @autoclosure () -> String = "", _ body: () -> T
) throws(SocketError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = cshims_errno()
        if code != EINTR { throw SocketError(name, errno: code, subject: subject()) }
    }
}

/// Like ``syscall(_:subject:_:)`` but reports EAGAIN/EWOULDBLOCK as `nil` instead of throwing.
@inline(__always)
func nonBlockingSyscall<T: FixedWidthInteger>(
    _ name: String, subject: @autoclosure () -> String = "", _ body: () -> T
) throws(SocketError) -> T? {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = cshims_errno()
        if code == EAGAIN || code == EWOULDBLOCK { return nil }
        if code != EINTR { throw SocketError(name, errno: code, subject: subject()) }
    }
}
