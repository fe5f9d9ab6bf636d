/// The connections one reactor holds, found by the token epoll reports for them.
///
/// A token names a slot and that slot's generation, so looking one up is an array index, not a hash, and a token of a
/// connection that has ended — still in the same batch of events, or in the deadlines — finds nothing, even once a
/// new connection holds its slot. Tokens of connections have the top bit set; the reactor's other tokens (its wake-up
/// descriptor, its serve loops) are small numbers without it.
struct EventConnectionTable<Connection: AnyObject> {
    private struct Slot {
        var connection: Connection?
        var generation: UInt32 = 0
    }

    private var slots: [Slot] = []
    private var freeSlots: [Int] = []

    private static var connectionBit: UInt64 { 1 << 63 }

    /// Creates a connection with the token of a free slot (`make` is given the token) and files it there.
    mutating func insert(_ make: (UInt64) -> Connection) -> Connection {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = slots.count
            slots.append(Slot())
        }
        let connection = make(token(ofSlot: slot))
        slots[slot].connection = connection
        return connection
    }

    /// The connection filed under `token`, if it is still held.
    subscript(token: UInt64) -> Connection? {
        guard let slot = slot(of: token) else { return nil }
        return slots[slot].connection
    }

    /// Takes the connection filed under `token` out of the table; returns it, or `nil` if it was not held.
    mutating func remove(_ token: UInt64) -> Connection? {
        guard let slot = slot(of: token), let connection = slots[slot].connection else { return nil }
        slots[slot].connection = nil
        slots[slot].generation &+= 1
        freeSlots.append(slot)
        return connection
    }

    /// Every connection held, in slot order.
    var all: [Connection] {
        slots.compactMap(\.connection)
    }

    /// The slot `token` names if it is that slot's token now.
    private func slot(of token: UInt64) -> Int? {
        guard token & Self.connectionBit != 0 else { return nil }
        let slot = Int(truncatingIfNeeded: token & 0xFFFF_FFFF)
        guard slot < slots.count, self.token(ofSlot: slot) == token else { return nil }
        return slot
    }

    /// The token of `slot`'s present occupant: the slot, its generation (31 bits) and the top bit.
    private func token(ofSlot slot: Int) -> UInt64 {
        Self.connectionBit | (UInt64(slots[slot].generation) & 0x7FFF_FFFF) << 32 | UInt64(slot)
    }
}
