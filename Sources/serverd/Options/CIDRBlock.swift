import FamilyServer

/// An IPv4 or IPv6 network in CIDR notation, used by `--allow` and `--deny`.
///
/// Parses `10.0.0.0/8`, `::1/128`, and a bare address (`192.168.1.7` is `/32`, `::1` is `/128`). Bits past the prefix
/// are cleared, so `192.168.1.7/24` is the block `192.168.1.0/24`. An IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`)
/// is stored as the IPv4 block it maps (`10.0.0.0/8`). An IPv4 address, plain or IPv4-mapped (`::ffff:10.1.2.3`, as a
/// dual-stack socket reports IPv4 clients), is in the IPv4 blocks that hold it and in the IPv6 blocks that hold its
/// mapped form: `::/0` holds every address, `::ffff:0:0/96` (stored as `0.0.0.0/0`) every IPv4 address.
struct CIDRBlock: Hashable, Sendable, CustomStringConvertible {
    /// The network address in network byte order: 4 bytes for IPv4, 16 for IPv6, bits past the prefix zero.
    let network: [UInt8]
    /// How many leading bits an address must share with ``network`` to be in the block.
    let prefixLength: Int

    /// Parses a block.
    /// - Parameter text: `ADDRESS/PREFIX` or a bare `ADDRESS`.
    /// - Throws: ``OptionValueError`` naming the text when the address or the prefix length is malformed.
    init(parsing text: String) throws(OptionValueError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let addressText = String(parts[0])
        guard var bytes = CIDRBlock.addressBytes(addressText) else {
            throw OptionValueError("'\(text)' is not a CIDR block: '\(addressText)' is not an IPv4 or IPv6 address")
        }
        let maximumLength = bytes.count * 8
        var length = maximumLength
        if parts.count == 2 {
            let lengthText = parts[1]
            guard !lengthText.isEmpty, lengthText.count <= 3, lengthText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let parsed = Int(lengthText), parsed <= maximumLength
            else {
                throw OptionValueError(
                    "'\(text)' is not a CIDR block: the prefix length must be a number from 0 to \(maximumLength)")
            }
            length = parsed
        }
        if bytes.count == 16, IPAddress(bytes: bytes).mappedIPv4 != nil, length >= 96 {
            bytes = Array(bytes[12...])
            length -= 96
        }
        self.network = CIDRBlock.masked(bytes, prefixLength: length)
        self.prefixLength = length
    }

    /// The block of the first `prefixLength` bits of an address: the source a peer counts as for `max-per-source`.
    /// - Parameters:
    ///   - addressBytes: 4 or 16 bytes in network byte order; an IPv4-mapped IPv6 address is taken as its IPv4
    ///     address.
    ///   - prefixLength: The bits kept, clamped to the address's width.
    init(address addressBytes: [UInt8], prefixLength: Int) {
        let address = CIDRBlock.unmapped(addressBytes)
        let length = min(max(prefixLength, 0), address.count * 8)
        self.network = CIDRBlock.masked(address, prefixLength: length)
        self.prefixLength = length
    }

    /// Whether an address is in the block.
    /// - Parameter addressBytes: The address in network byte order: 4 bytes (IPv4) or 16 (IPv6). An IPv4-mapped IPv6
    ///   address is an IPv4 address; an IPv4 address is also its mapped IPv6 form (`::ffff:a.b.c.d`).
    /// - Returns: `true` when the address shares the block's prefix.
    func contains(_ addressBytes: [UInt8]) -> Bool {
        var address = CIDRBlock.unmapped(addressBytes)
        if network.count == 16 && address.count == 4 {
            address = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + address
        }
        guard address.count == network.count else { return false }
        return CIDRBlock.masked(address, prefixLength: prefixLength) == network
    }

    /// The canonical form: the network as ``IPAddress`` prints it, a slash and the prefix length (`10.0.0.0/8`).
    var description: String {
        "\(IPAddress(bytes: network))/\(prefixLength)"
    }

    /// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) maps; any other address unchanged.
    /// - Parameter addressBytes: 4 or 16 bytes in network byte order.
    static func unmapped(_ addressBytes: [UInt8]) -> [UInt8] {
        addressBytes.count == 16 ? IPAddress(bytes: addressBytes).mappedIPv4?.bytes ?? addressBytes : addressBytes
    }

    /// The bytes of a textual IPv4 (dotted quad) or IPv6 address (FamilyServer's ``IPAddress``), or `nil`.
    private static func addressBytes(_ text: String) -> [UInt8]? {
        IPAddress(numeric: text)?.bytes
    }

    /// `bytes` with every bit past the first `prefixLength` cleared.
    private static func masked(_ bytes: [UInt8], prefixLength: Int) -> [UInt8] {
        bytes.indices.map { index in
            let bitsKept = min(max(prefixLength - index * 8, 0), 8)
            return bitsKept == 0 ? 0 : bytes[index] & ~(UInt8.max >> bitsKept)
        }
    }
}
