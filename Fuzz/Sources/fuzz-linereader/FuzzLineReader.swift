// libFuzzer target: the line reader (`BufferedReader`, the `rfile` every stream service reads
// with, whose `readline(limit:)` enforces `--max-line`), differentially against a plain model.
//
// The input is a small program of read operations plus the bytes the peer sends and how they are
// cut into arrivals. The bytes go through a real socket: a Unix datagram socketpair, one datagram
// per arrival, sent from the reader's `beforeBlocking` hook right before each receive, so each
// receive gets exactly the next arrival (and an empty datagram is the end of the input). Every
// operation's result must equal what the model computes from the whole byte string, whatever the
// cut: `read(n)`, `readline(limit:)` (the Python semantics: up to and including the LF, at most
// `limit` bytes), `readAvailable()` and `readToEnd()`, and `bufferedCount` must always be what
// arrived minus what was consumed.
//
// Layout: byte 0 = number of operations (mod 33); 2 bytes per operation; 1 byte seeding the
// arrival sizes; the rest is the data.
import FamilyServer
import FuzzDriver
import Glibc

private func fail(_ message: String) -> Never {
    let line = "fuzz-linereader: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// The peer: sends the data one arrival at a time, each no larger than the reader's next receive
/// asks for (a datagram larger than the receive would be cut). The reader starts at
/// `initialChunkSize` and doubles its chunk after a receive that filled it, up to `maxChunkSize`;
/// the peer mirrors that, and sometimes sends exactly a full chunk to make it grow.
private final class Peer {
    let fd: Int32
    let data: [UInt8]
    var sent = 0
    var finished = false
    var seed: UInt32
    var chunk = BufferedReader.initialChunkSize

    init(fd: Int32, data: [UInt8], seed: UInt8) {
        self.fd = fd
        self.data = data
        self.seed = UInt32(seed) &* 2_654_435_761 | 1
    }

    private func nextSize() -> Int {
        seed ^= seed << 13
        seed ^= seed >> 17
        seed ^= seed << 5
        // Mostly small arrivals, sometimes up to or exactly a whole receive chunk.
        switch seed % 8 {
        case 0: return Int(seed >> 8) % chunk + 1
        case 1: return 1
        case 2: return chunk
        default: return Int(seed >> 8) % 64 + 1
        }
    }

    /// Sends the next arrival, or the end of input once everything is out.
    func sendNext() {
        guard !finished else { fail("the reader asked for more after the end of the input") }
        if sent == data.count {
            finished = true
            guard send(fd, nil, 0, 0) == 0 else { fail("send(eof): \(errno)") }
            return
        }
        let count = min(nextSize(), data.count - sent)
        let result = data.withUnsafeBytes { send(fd, $0.baseAddress! + sent, count, 0) }
        guard result == count else { fail("send: \(result), errno \(errno)") }
        sent += count
        if count == chunk && chunk < BufferedReader.maxChunkSize { chunk *= 2 }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLineReader(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    let input = Array(UnsafeBufferPointer(start: bytes, count: size))
    guard input.count >= 2 else { return -1 }
    let operationCount = Int(input[0]) % 33
    guard input.count >= 1 + operationCount * 2 + 1 else { return -1 }
    let program = Array(input[1..<(1 + operationCount * 2)])
    let seed = input[1 + operationCount * 2]
    let data = Array(input[(2 + operationCount * 2)...])

    var pair: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
        fail("socketpair: \(errno)")
    }
    defer { close(pair[1]) }
    let socket: Socket
    do {
        socket = try Socket(adopting: pair[0])
    } catch {
        fail("adopt: \(error)")
    }
    defer { socket.close() }
    let peer = Peer(fd: pair[1], data: data, seed: seed)
    let reader = BufferedReader(socket: socket)
    reader.beforeBlocking = { peer.sendNext() }

    var position = 0
    func expectLine(limit: Int?) -> [UInt8] {
        let remaining = data.count - position
        let window = limit.map { min($0, remaining) } ?? remaining
        if let newline = data[position..<(position + window)].firstIndex(of: 0x0A) {
            return Array(data[position...newline])
        }
        return Array(data[position..<(position + window)])
    }

    for index in 0..<operationCount {
        let kind = program[index * 2]
        let parameter = Int(program[index * 2 + 1])
        let name: String
        let got: [UInt8]
        let expected: [UInt8]
        do {
            switch kind % 6 {
            case 0:
                // Sizes around the receive chunks, so reads span arrivals and refills; a negative
                // size reads to the end, as Python's read(-1).
                let count = kind & 0x40 != 0 ? -1 - parameter : kind & 0x80 != 0 ? parameter * 131 : parameter
                name = "read(\(count))"
                got = try reader.read(count)
                expected = count < 0 ? Array(data[position...]) : Array(data[position..<min(data.count, position + count)])
            case 1, 2:
                // A negative limit is no limit, as Python's readline(-1).
                let limit = kind & 0x40 != 0 ? -1 - parameter : kind & 0x80 != 0 ? parameter * 257 : parameter
                name = "readline(limit: \(limit))"
                got = try reader.readline(limit: limit)
                expected = expectLine(limit: limit < 0 ? nil : limit)
            case 3:
                name = "readline()"
                got = try reader.readline()
                expected = expectLine(limit: nil)
            case 4:
                name = "readAvailable()"
                got = try reader.readAvailable()
                // What had arrived and was unread, or else the next arrival.
                expected = Array(data[position..<min(data.count, position + got.count)])
                if got.isEmpty && position < data.count { fail("readAvailable() returned nothing before the end") }
                if position + got.count != peer.sent { fail("readAvailable() left arrived bytes behind") }
            default:
                name = "readToEnd()"
                got = try reader.readToEnd()
                expected = Array(data[position...])
            }
        } catch {
            fail("operation \(index) threw \(error)")
        }
        guard got == expected else {
            fail("\(name) at \(position) of \(data.count): got \(got.count) bytes \(got.prefix(40)), expected \(expected.count) \(expected.prefix(40))")
        }
        position += got.count
        let arrived = peer.sent
        guard reader.bufferedCount == arrived - position else {
            fail("after \(name): bufferedCount \(reader.bufferedCount), arrived \(arrived), consumed \(position)")
        }
    }
    return 0
}

// The program's main: libFuzzer's driver, with its usual flags (-max_total_time, -runs, corpus
// directories, …), calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzLineReader))
