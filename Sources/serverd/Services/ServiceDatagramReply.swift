/// What each built-in service answers to a datagram: echo sends it back, discard nothing, daytime the `ctime` line
/// whatever came, stamp `[ctime] PAYLOAD` (trailing CR/LF dropped). The ``ServiceDatagramServer`` answers from it
/// directly, without a handler object per datagram.
enum ServiceDatagramReply {
    /// The reply of `service` to `payload`, or `nil` when it sends none.
    static func reply(of service: ServiceName, to payload: [UInt8]) -> [UInt8]? {
        switch service {
        case .echo:
            return payload
        case .discard, .exec:
            return nil
        case .daytime:
            return ctimeNow() + [0x0D, 0x0A]
        case .stamp:
            var end = payload.endIndex
            while end > payload.startIndex, payload[end - 1] == 0x0A || payload[end - 1] == 0x0D { end -= 1 }
            return [0x5B] + ctimeNow() + [0x5D, 0x20] + payload[..<end]
        }
    }
}
