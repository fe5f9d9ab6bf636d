// libFuzzer target: the address parser of SPEC section 2 (`ListenAddress(parsing:)`, which covers
// `SocketAddress(parsing:)`), and the sockaddr encoding and decoding every parsed address goes
// through on its way to bind/connect.
//
// Beyond "no crash", it checks the properties the SPEC gives the textual form:
//   - a parsed address prints in a form that parses back to the same value, and that form is a
//     fixed point (canonical forms parse and print back identically);
//   - encoding to a sockaddr and decoding it again gives the same address, at a length that fits;
//   - a Unix path or abstract name never exceeds 107 bytes, and a longer one is an error that
//     says "too long";
//   - an error names the text it was given.
//
// Host names are resolved by the parser (getaddrinfo); inputs that would resolve one are skipped,
// so that the fuzzer never waits for DNS.
import FamilyServer
import FuzzDriver
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddress(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return -1 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if wouldResolveHostName(text) { return -1 }  // -1: keep it out of the corpus
    check(text)
    return 0
}

private func fail(_ message: String) -> Never {
    let line = "fuzz-address: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// Whether `SocketAddress(parsing:)` would call getaddrinfo for this text (a tcp:// or udp://
/// host that is neither bracketed, `*`, nor a numeric IPv4/IPv6 literal).
private func wouldResolveHostName(_ text: String) -> Bool {
    let rest: Substring
    if text.hasPrefix("tcp://") || text.hasPrefix("udp://") {
        rest = text.dropFirst(6)
    } else {
        return false
    }
    if rest.hasPrefix("[") { return false }
    guard let colon = rest.lastIndex(of: ":") else { return false }
    let host = rest[..<colon]
    if host.isEmpty || host == "*" || host.contains(":") { return false }
    return IPAddress(numeric: String(host)) == nil
}

private func check(_ text: String) {
    let parsed: ListenAddress
    do {
        parsed = try ListenAddress(parsing: text)
    } catch {
        guard error.address == text else { fail("error names '\(error.address)', not the input '\(text)'") }
        let message = error.description
        if case .tooLong(let bytes) = error.reason {
            guard bytes > SocketAddress.maxUnixPathBytes, message.contains("too long") else {
                fail("tooLong(\(bytes)) for '\(text)': \(message)")
            }
        }
        return
    }
    let printed = parsed.description
    let reparsed: ListenAddress
    do {
        reparsed = try ListenAddress(parsing: printed)
    } catch {
        fail("'\(text)' printed as '\(printed)', which does not parse: \(error)")
    }
    guard reparsed == parsed else { fail("'\(text)' -> '\(printed)' -> \(reparsed), not \(parsed)") }
    guard reparsed.description == printed else { fail("'\(printed)' is not a fixed point") }

    guard case .bind(let address) = parsed else { return }
    switch address.endpoint {
    case .unixPath(let path):
        guard path.utf8.count <= SocketAddress.maxUnixPathBytes, !path.utf8.contains(0), !path.isEmpty else {
            fail("'\(text)': accepted a Unix path of \(path.utf8.count) bytes")
        }
    case .unixAbstract(let name):
        guard name.count <= SocketAddress.maxUnixPathBytes, !name.isEmpty else {
            fail("'\(text)': accepted an abstract name of \(name.count) bytes")
        }
    case .inet, .unnamed:
        break
    }
    // sockaddr round trip, as bind, connect and accept see it.
    let decoded = address.withSockAddr { (sa, length) -> SocketAddress? in
        guard Int(length) <= MemoryLayout<sockaddr_storage>.size, length > 0 else {
            fail("'\(text)': sockaddr length \(length)")
        }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(length)))
        }
        return SocketAddress(storage: storage, length: length, transport: address.transport)
    }
    guard let decoded, decoded == address else {
        fail("'\(text)': sockaddr round trip gave \(decoded.map { "\($0)" } ?? "nil"), not \(address)")
    }
}

// The program's main: libFuzzer's driver, with its usual flags (-max_total_time, -runs, corpus
// directories, …), calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzAddress))
