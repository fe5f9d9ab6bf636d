// libFuzzer target: serverd's command line (SPEC sections 3 and 5), through the daemon's own parsing
// (`CommandLineParser.parse`) and planning (`DesiredState.build`), compiled from its files (ServerdConfiguration's
// Options, CommandLine and Plan are symbolic links into ../Sources/serverd), with every numeric option's range.
//
// The input is the argument vector, one word per line. `--config` words are dropped (the fuzzer reads no files;
// fuzz-config covers the file), and no listener is implicit (`implicitListeners` gives none). Checked besides "no
// crash, no leak, no hang":
// - a refused command line is a usage error (64) from the parser, a usage (64) or configuration (78) error from the
//   plan, with a one-line message;
// - an accepted one yields only values inside their documented ranges (OptionRange) and of the kind their option
//   takes, and the arithmetic the daemon does with them (max-line + 1, timeouts as milliseconds in an Int32 and as
//   microseconds, min-rate as a Double) cannot overflow; its listeners are unique, their Unix socket paths absolute.
// Listener addresses with a host name are skipped (-1): resolving them would wait for DNS.
@testable import ServerdConfiguration
import FamilyServer
import FuzzDriver
import Glibc

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    let text = String(decoding: UnsafeBufferPointer(start: bytes, count: size), as: UTF8.self)
    let words = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        .filter { !$0.hasPrefix("--config") }
    let request: CommandLineRequest
    do {
        request = try CommandLineParser.parse(words, workingDirectory: "/fuzz")
    } catch {
        guard error.status == .usage else { fail("status \(error.status) from the parser for \(words): \(error.message)") }
        checkMessage(error, words)
        return 0
    }
    let invocation: Invocation
    switch request {
    case .print(let text):
        guard !text.isEmpty else { fail("empty text to print for \(words)") }
        return 0
    case .run(let run):
        invocation = run
    }
    guard invocation.configFile == nil else { fail("a configuration file from \(words) without --config") }
    guard invocation.workingDirectory == "/fuzz" else { fail("working directory \(invocation.workingDirectory)") }
    if invocation.listen.contains(where: FuzzChecks.wouldResolveHostName(spec:)) { return -1 }
    if let problem = FuzzChecks.problem(in: OptionTable.resolve(.daemon, layers: [invocation.options]), scope: .daemon) {
        fail("\(words): \(problem)")
    }
    let state: DesiredState
    do {
        state = try DesiredState.build(invocation, implicitListeners: { _ throws(DaemonError) in [] })
    } catch {
        guard error.status == .usage || error.status == .configuration else {
            fail("status \(error.status) for \(words): \(error.message)")
        }
        checkMessage(error, words)
        return 0
    }
    check(state, words)
    return 0
}

private func checkMessage(_ error: DaemonError, _ words: [String]) {
    guard !error.message.isEmpty, !error.message.contains("\n"), !error.message.contains("\r") else {
        fail("message for \(words) is not one line: '\(error.message)'")
    }
}

/// Every value of an accepted command line is inside its range, and the daemon's arithmetic on it is safe.
private func check(_ state: DesiredState, _ words: [String]) {
    if let problem = FuzzChecks.problem(in: state.daemonValues, scope: .daemon) { fail("\(words): \(problem)") }
    if let problem = FuzzChecks.problem(in: state.settings) { fail("\(words): \(problem)") }
    var identities = Set<ListenerIdentity>()
    for listener in state.listeners {
        let subject = "\(words): \(listener.subject)"
        guard listener.isCommandLine else { fail("\(subject) not from --listen") }
        guard identities.insert(listener.identity).inserted else { fail("\(subject): \(listener.identity) twice") }
        guard let spec = try? ListenerSpec.split(listener.text), spec.service == listener.policy.service else {
            fail("\(subject): service \(listener.policy.service)")
        }
        if let problem = FuzzChecks.problem(address: listener.identity.address) { fail("\(subject): \(problem)") }
        if let problem = FuzzChecks.problem(in: listener.values, scope: .listener) { fail("\(subject): \(problem)") }
        if let problem = FuzzChecks.problem(in: listener.policy) { fail("\(subject): \(problem)") }
        if listener.policy.service == .exec, listener.policy.exec.first?.isEmpty ?? true {
            fail("\(subject): exec listener without a program")
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
