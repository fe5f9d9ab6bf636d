/// What each built-in service answers to a datagram: echo sends it back, discard nothing, daytime the `ctime` line
/// whatever came, stamp `[ctime] PAYLOAD` (trailing CR/LF dropped). The ``ServiceDatagramServer`` answers from it
/// directly, without a handler object per datagram; echo's answer is the payload itself, sent from where it lies.
enum ServiceDatagramReply {
    /// The datagram's own payload (echo).
    case payload
    /// Bytes of the service's own.
    case bytes([UInt8])

    /// The reply of `service` to `payload`, or `nil` when it sends none (discard, exec, an empty datagram echoed).
    static func of(_ service: ServiceName, to payload: UnsafeRawBufferPointer) -> ServiceDatagramReply? {
        switch service {
        case .echo:
            return payload.isEmpty ? nil : .payload
        case .discard, .exec:
            return nil
        case .daytime:
            return .bytes(ctimeNow() + [0x0D, 0x0A])
        case .stamp:
            var end = payload.endIndex
            while end > payload.startIndex, payload[end - 1] == 0x0A || payload[end - 1] == 0x0D { end -= 1 }
            return .bytes([0x5B] + ctimeNow() + [0x5D, 0x20] + payload[..<end])
        }
    }
}
