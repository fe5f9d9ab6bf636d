// SwiftNIO echo server, the benchmark's SwiftNIO peer.
//
// It is NIO's own NIOEchoServer example (BackPressureHandler + EchoHandler, one event loop per
// core, backlog 256, maxMessagesPerRead 16) serving TCP, a Unix stream socket and UDP at once.
//
//   nio-echo [--tcp HOST:PORT] [--unix PATH] [--udp HOST:PORT]
//
// For each listener it prints `listening on echo@tcp://HOST:PORT` (the real port) to stderr,
// the same line serverd logs, so the benchmark driver reads every server's ports the same way.
// It runs until killed (SIGTERM).
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

private final class DatagramEchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A datagram socket stays open on errors such as ECONNREFUSED from a vanished client.
    }
}

func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func usage() -> Never {
    say("usage: nio-echo [--tcp HOST:PORT] [--unix PATH] [--udp HOST:PORT]")
    exit(64)
}

func splitHostPort(_ s: String) -> (String, Int) {
    guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]) else { usage() }
    var host = String(s[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host, port)
}

var tcp: (String, Int)? = nil
var udp: (String, Int)? = nil
var unixPath: String? = nil
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    guard let v = args.popFirst() else { usage() }
    switch a {
    case "--tcp": tcp = splitHostPort(v)
    case "--udp": udp = splitHostPort(v)
    case "--unix": unixPath = v
    default: usage()
    }
}
if tcp == nil && udp == nil && unixPath == nil { usage() }

let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 256)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
            try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
    }
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator())

func hostForm(_ address: SocketAddress?) -> String {
    guard let address, let ip = address.ipAddress, let port = address.port else { return "?" }
    return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
}

var closeFutures: [EventLoopFuture<Void>] = []
do {
    if let (host, port) = tcp {
        let ch = try bootstrap.bind(host: host, port: port).wait()
        say("nio-echo: listening on echo@tcp://\(hostForm(ch.localAddress))")
        closeFutures.append(ch.closeFuture)
    }
    if let path = unixPath {
        let ch = try bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
        say("nio-echo: listening on echo@unix:\(path)")
        closeFutures.append(ch.closeFuture)
    }
    if let (host, port) = udp {
        let ch = try DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramEchoHandler())
                }
            }
            .bind(host: host, port: port).wait()
        say("nio-echo: listening on echo@udp://\(hostForm(ch.localAddress))")
        closeFutures.append(ch.closeFuture)
    }
} catch {
    say("nio-echo: \(error)")
    exit(71)
}

// Never completes: the listeners are only closed when the process is killed.
for f in closeFutures {
    try f.wait()
}
