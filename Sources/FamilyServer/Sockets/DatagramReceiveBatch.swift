import CShims
import Glibc

/// Datagrams received together by one `recvmmsg` (``Socket/receiveDatagrams(into:limit:)``), into
/// buffers that the batch keeps and reuses from one call to the next: no allocation per datagram
/// but the copy of its payload (``payload(at:)``).
///
/// One thread at a time: the serve loop of a ``DatagramServer`` owns its batch.
public final class DatagramReceiveBatch {
    /// The most datagrams one call receives.
    public let capacity: Int
    /// The largest datagram received whole; a longer one is cut to this size (MSG_TRUNC), as
    /// ``Socket/receiveDatagram(maxSize:)`` does.
    public let maxPacketSize: Int
    /// How many datagrams the last call received.
    public internal(set) var count = 0
    let slots: UnsafeMutablePointer<cshims_dgram_slot>
    private let buffers: UnsafeMutableRawPointer
    /// The sender ``sender(at:transport:)`` decoded last and the slot it came from: a datagram from the same address
    /// (a client with several datagrams in the batch) takes it without a second decoding. Forgotten by each receive.
    fileprivate var decodedSender: (index: Int, address: SocketAddress)?

    /// The most datagrams a batch can hold, the limit of one `recvmmsg` call here.
    public static let maximumCapacity = Int(CSHIMS_DGRAM_BATCH_MAX)

    /// Creates an empty batch of `capacity` datagrams (1 up to ``maximumCapacity``) of up to
    /// `maxPacketSize` bytes each. The buffers are allocated once; the memory of a page no
    /// datagram reached is never touched.
    public init(capacity: Int, maxPacketSize: Int) {
        precondition((1...Self.maximumCapacity).contains(capacity), "a batch of \(capacity) datagrams")
        precondition(maxPacketSize > 0, "datagrams of at most \(maxPacketSize) bytes")
        self.capacity = capacity
        self.maxPacketSize = maxPacketSize
        buffers = UnsafeMutableRawPointer.allocate(byteCount: capacity * maxPacketSize, alignment: 16)
        slots = UnsafeMutablePointer<cshims_dgram_slot>.allocate(capacity: capacity)
        slots.initialize(repeating: cshims_dgram_slot(), count: capacity)
        for index in 0..<capacity {
            slots[index].buffer = buffers + index * maxPacketSize
            slots[index].capacity = maxPacketSize
        }
    }

    deinit {
        slots.deallocate()
        buffers.deallocate()
    }

    /// The payload of datagram `index` (below ``count``), cut to ``maxPacketSize``.
    public func payload(at index: Int) -> [UInt8] {
        withPayload(at: index) { [UInt8]($0) }
    }

    /// Calls `body` with the payload of datagram `index` (below ``count``), cut to ``maxPacketSize``, where it lies in
    /// the batch's buffer: no copy. The bytes are valid during the call only.
    public func withPayload<R, E: Error>(at index: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let slot = slots[checked(index)]
        return try body(UnsafeRawBufferPointer(start: slot.buffer, count: min(slot.length, maxPacketSize)))
    }

    /// Whether datagram `index` was longer than ``maxPacketSize`` and its payload cut.
    public func wasTruncated(at index: Int) -> Bool {
        slots[checked(index)].length > maxPacketSize
    }

    /// The sender of datagram `index`, `.unnamed` for an unbound Unix sender.
    public func sender(at index: Int, transport: SocketAddress.Transport) -> SocketAddress {
        if let decoded = decodedSender, decoded.address.transport == transport,
            sameAddress(decoded.index, checked(index))
        {
            return decoded.address
        }
        let slot = slots[checked(index)]
        let address = SocketAddress(storage: slot.address, length: slot.address_length, transport: transport)
            ?? SocketAddress(transport, .unnamed)
        decodedSender = (index, address)
        return address
    }

    /// Whether slots `one` and `other` hold the same source address, byte for byte.
    private func sameAddress(_ one: Int, _ other: Int) -> Bool {
        guard slots[one].address_length == slots[other].address_length else { return false }
        let length = min(Int(slots[one].address_length), MemoryLayout<sockaddr_storage>.size)
        return withUnsafeBytes(of: &slots[one].address) { first in
            withUnsafeBytes(of: &slots[other].address) { second in
                guard let first = first.baseAddress, let second = second.baseAddress else { return false }
                return memcmp(first, second, length) == 0
            }
        }
    }

    /// The SCM_CREDENTIALS of datagram `index`: on a Unix socket with SO_PASSCRED
    /// (``Socket/enablePassCredentials()``), else `nil`; `nil` too for a datagram queued before
    /// SO_PASSCRED was set.
    public func credentials(at index: Int) -> PeerCredentials? {
        let slot = slots[checked(index)]
        guard slot.has_cred != 0 else { return nil }
        return PeerCredentials(pid: slot.cred.pid, uid: slot.cred.uid, gid: slot.cred.gid)
    }

    private func checked(_ index: Int) -> Int {
        precondition(index >= 0 && index < count, "datagram \(index) of a batch of \(count)")
        return index
    }
}

extension Socket {
    /// Receives the datagrams queued on this socket now, up to `limit` (at most the batch's
    /// ``DatagramReceiveBatch/capacity``), into `batch`, with one `recvmmsg` that does not wait
    /// for more; their senders' credentials come along on a Unix socket with SO_PASSCRED.
    /// - Returns: how many arrived (also in ``DatagramReceiveBatch/count``), 0 when none is queued.
    /// - Throws: ``SocketError`` for `recvmmsg`.
    public func receiveDatagrams(into batch: DatagramReceiveBatch, limit: Int) throws(SocketError) -> Int {
        batch.count = 0
        batch.decodedSender = nil
        let wanted = UInt32(max(0, min(limit, batch.capacity)))
        guard wanted > 0 else { return 0 }
        let fd = fileDescriptor
        let received = try nonBlockingSyscall("recvmmsg", subject: description) {
            cshims_recv_batch(fd, batch.slots, wanted)
        }
        batch.count = Int(received ?? 0)
        return batch.count
    }
}
