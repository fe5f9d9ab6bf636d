// libFuzzer target: the datagram request path, where every byte is a remote peer's choice.
//
// 1. The sender's address as the kernel hands it over (`sockaddr_storage` and its length, whose
//    Unix path bytes a local client picks freely: any bytes, unterminated, 108 long, abstract)
//    is decoded, printed, and — for a Unix sender with fuzzed credentials — checked by the reply
//    guard (`UnixReplyTarget`), which walks the real file system read-only. None may trap.
// 2. The payload makes a real round trip: a client sends it to a `DatagramServer` on an abstract
//    Unix socket, the server's echo handler answers through `Datagram.sendReply`, which runs the
//    same guard, and the client must get exactly the payload back.
//
// Layout: byte 0 = address family selector, byte 1 = address length, bytes 2..5 = uid, then the
// address bytes (up to the length) and the rest is the payload.
import FamilyServer
import FuzzDriver
import Glibc

private func fail(_ message: String) -> Never {
    let line = "fuzz-datagram: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

private final class EchoHandler: DatagramRequestHandler {
    override func handle() throws {
        try wfile.write(datagram.payload)
    }
}

/// One server and one client for the whole run, both on abstract names of this process.
private final class RoundTrip: @unchecked Sendable {
    let server: DatagramServer
    let client: Socket

    init() {
        do {
            let name = Array("serverd-fuzz-datagram-\(getpid())".utf8)
            server = try DatagramServer(address: SocketAddress(.datagram, .unixAbstract(name)), handler: EchoHandler.self)
            client = try Socket(family: AF_UNIX, transport: .datagram)
            try client.bind(to: SocketAddress(.datagram, .unixAbstract(name + Array("-client".utf8))))
            try client.setTimeouts(receive: 5, send: 5)
        } catch {
            fail("cannot set up: \(error)")
        }
    }

    func check(_ payload: [UInt8]) {
        do {
            try client.sendDatagram(payload, to: server.serverAddress)
            server.handleRequest()
            guard !payload.isEmpty else { return }  // nothing written, nothing sent
            guard let (reply, _) = try client.receiveDatagram(maxSize: 70000) else { fail("no reply") }
            guard reply == payload else { fail("reply of \(reply.count) bytes differs from the \(payload.count) sent") }
        } catch {
            fail("round trip of \(payload.count) bytes: \(error)")
        }
    }
}

nonisolated(unsafe) private var roundTrip: RoundTrip?

private func senderAddress(_ data: UnsafeBufferPointer<UInt8>) -> (SocketAddress?, UInt32, Int) {
    guard data.count >= 6 else { return (nil, 0, data.count) }
    let families = [AF_UNIX, AF_INET, AF_INET6, AF_UNIX]
    var storage = sockaddr_storage()
    storage.ss_family = sa_family_t(families[Int(data[0]) % families.count])
    let size = MemoryLayout<sockaddr_storage>.size
    let length = min(Int(data[1]), size)
    let uid = UInt32(data[2]) | UInt32(data[3]) << 8 | UInt32(data[4]) << 16 | UInt32(data[5]) << 24
    let available = min(length, data.count - 6)
    // The family field stays as chosen; the bytes after it come from the input.
    let familySize = MemoryLayout<sa_family_t>.size
    withUnsafeMutableBytes(of: &storage) { raw in
        for index in familySize..<max(familySize, available) {
            raw[index] = data[6 + index]
        }
    }
    let address = SocketAddress(storage: storage, length: socklen_t(max(length, familySize)), transport: .datagram)
    return (address, uid, 6 + available)
}

func fuzzDatagram(_ pointer: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let data = UnsafeBufferPointer(start: pointer, count: size)
    if roundTrip == nil { roundTrip = RoundTrip() }
    let (sender, uid, consumed) = senderAddress(data)
    if let sender {
        _ = sender.description
        if sender.family == AF_UNIX {
            let credentials = PeerCredentials(pid: getpid(), uid: uid, gid: uid)
            _ = try? UnixReplyTarget.resolve(sender: sender, credentials: credentials, from: roundTrip!.server.socket)
        }
    }
    let payload = Array(data[min(consumed, data.count)...].prefix(65000))
    roundTrip!.check(payload)
    return 0
}

// The program's main: libFuzzer's driver, with its usual flags, calling the function above for
// every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzDatagram))
