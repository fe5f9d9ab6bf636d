// libFuzzer target: the configuration parser of `--config` (SPEC section 3, "Configuration
// file"), compiled from the daemon's own files (Configuration/ is a symbolic link to
// ../Sources/serverd/Configuration), and the value parsers the command line shares with it.
//
// Byte 0 picks the parser; the rest is its text:
//   0…3  the whole file: `ConfigurationFile(path:text:)` (TOMLKit, then every key's checks);
//        an error must be a configuration error (exit 78) whose message starts with the path;
//   4    `ListenSpec(parsing:)`        5  `OptionValue.cidrBlocks`, and each block's `contains`
//   6    `OptionValue.socketMode`      7  `OptionValue.seconds`
//   8    `AccountID.resolveList`       9  `TOMLKeyLocator` alone
// A parsed CIDR block must contain its own network address and print in a form that parses back
// to the same block.
@testable import ServerdConfiguration
import FuzzDriver
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    guard size >= 1 else { return -1 }
    let selector = bytes[0] % 10
    let text = String(decoding: UnsafeBufferPointer(start: bytes + 1, count: size - 1), as: UTF8.self)
    switch selector {
    case 0...3:
        checkFile(text)
    case 4:
        if let spec = try? ListenSpec(parsing: text) {
            guard !spec.address.isEmpty, "\(spec.service.rawValue)@\(spec.address)" == text else {
                fail("ListenSpec '\(text)' -> \(spec)")
            }
        }
    case 5:
        if let blocks = try? OptionValue.cidrBlocks(text) {
            for block in blocks {
                guard block.contains(block.network) else {
                    fail("\(block) does not contain its own network")
                }
                guard let again = try? CIDRBlock(parsing: block.description), again == block else {
                    fail("CIDR '\(text)': \(block) does not parse back to itself")
                }
            }
        }
    case 6:
        if let mode = try? OptionValue.socketMode(text), mode > OptionValue.maximumSocketMode {
            fail("socket mode '\(text)' -> \(mode)")
        }
    case 7:
        if let seconds = try? OptionValue.seconds(text) {
            guard seconds.isFinite, OptionRange.seconds.contains(seconds) else {
                fail("seconds '\(text)' -> \(seconds)")
            }
        }
    case 8:
        _ = try? AccountID.resolveList(text, kind: .user)
        _ = try? AccountID.resolveList(text, kind: .group)
    default:
        let locator = TOMLKeyLocator(text: text)
        _ = locator.entry("listen", in: .top)
        _ = locator.headerLine(ofListener: 0)
        _ = locator.elementLines(of: "listen", in: .top)
        _ = locator.firstNULEscape()
    }
    return 0
}

private func fail(_ message: String) -> Never {
    let line = "fuzz-config: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

private func checkFile(_ text: String) {
    do {
        let file = try ConfigurationFile(path: "/fuzz/serverd.toml", text: text)
        for listener in file.listeners {
            guard listener.origin.hasPrefix("/fuzz/serverd.toml") else { fail("listener origin '\(listener.origin)'") }
        }
    } catch {
        guard error.status == .configuration else { fail("status \(error.status) for a file error: \(error.message)") }
        guard error.message.hasPrefix("/fuzz/serverd.toml") else { fail("message does not name the file: \(error.message)") }
    }
}

// The program's main: libFuzzer's driver, with its usual flags (-max_total_time, -runs, corpus
// directories, …), calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzConfig))
