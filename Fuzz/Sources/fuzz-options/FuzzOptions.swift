// libFuzzer target: serverd's command line (SPEC sections 3 and 5), through the daemon's own
// option parsing and validation (CommandLine/ and Configuration/ are symbolic links to
// ../Sources/serverd), with every numeric option's range.
//
// The input is the argument vector, one word per line. `--config` words are dropped (the fuzzer
// reads no files; fuzz-config covers the file). Checked besides "no crash, no leak, no hang":
// - a refused command line is a usage (64) or configuration (78) error with a one-line message;
// - an accepted one yields only values inside their documented ranges (OptionRange), and the
//   arithmetic the daemon does with them (max-line + 1, timeouts as milliseconds in an Int32,
//   bytes divided by min-rate) cannot overflow.
@testable import ServerdConfiguration
import FuzzDriver
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    let text = String(decoding: UnsafeBufferPointer(start: bytes, count: size), as: UTF8.self)
    let words = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        .filter { !$0.hasPrefix("--config") }
    do {
        guard case .run(let command) = try ServerdCommand.parseCommandLine(words) else { return 0 }
        let configuration = try DaemonConfiguration.load(from: command)
        check(configuration)
    } catch {
        guard error.status == .usage || error.status == .configuration else {
            fail("status \(error.status) for \(words): \(error.message)")
        }
        guard !error.message.isEmpty, !error.message.contains("\n") else {
            fail("message for \(words) is not one line: '\(error.message)'")
        }
    }
    return 0
}

/// Every value of an accepted configuration is inside its range, and the daemon's arithmetic on it is safe.
private func check(_ configuration: DaemonConfiguration) {
    guard OptionRange.seconds.contains(configuration.drainTimeout) else { fail("drain-timeout \(configuration.drainTimeout)") }
    for listener in configuration.listeners {
        let settings = listener.settings
        let counts: [(String, Int, ClosedRange<Int>)] = [
            ("max-connections", settings.maxConnections, OptionRange.maxConnections),
            ("max-per-source", settings.maxPerSource ?? 1, OptionRange.maxPerSource),
            ("max-line", settings.maxLine, OptionRange.maxLine),
            ("min-rate", settings.minRate, OptionRange.minRate),
            ("source-prefix-v4", settings.sourcePrefixV4, OptionRange.sourcePrefixV4),
            ("source-prefix-v6", settings.sourcePrefixV6, OptionRange.sourcePrefixV6),
            ("reply-rate-per-source", settings.replyRatePerSource, OptionRange.replyRatePerSource),
        ]
        for (name, value, range) in counts where !range.contains(value) {
            fail("\(name) \(value) outside \(range)")
        }
        for seconds in [settings.idleTimeout, settings.requestTimeout] {
            guard OptionRange.seconds.contains(seconds) else { fail("timeout \(seconds)") }
            _ = Int32(exactly: (seconds * 1000).rounded(.up))!
        }
        _ = settings.maxLine + 1
        if settings.minRate > 0 {
            _ = Int64(exactly: (Double(Int.max) / Double(settings.minRate)).rounded(.down)) ?? 0
        }
    }
}

private func fail(_ message: String) -> Never {
    let line = "fuzz-options: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

// The program's main: libFuzzer's driver, with its usual flags, calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzOptions))
