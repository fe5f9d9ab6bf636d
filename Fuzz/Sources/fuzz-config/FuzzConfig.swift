// libFuzzer target: the `--config` file (SPEC section 3, "Configuration file") and the value parsers the command
// line shares with it, compiled from the daemon's own files (ServerdConfiguration's Options, ConfigFile and Plan are
// symbolic links into ../Sources/serverd).
//
// Byte 0 picks what the rest is fed to:
//   0…2  the whole file in memory: `ConfigFile(path:bytes:)` (serverd's TOML parser, then every key's checks); an
//        error must be a configuration error (exit 78), one line, starting with the path; an accepted file's places
//        all name the path, and its listeners resolve as `DesiredState.build` resolves them
//        (`OptionTable.resolve` over the top level and the `[[listener]]` table, `ListenerPolicy(service:values:)`,
//        `DaemonSettings(values:)`) to values inside their ranges that the daemon's arithmetic cannot overflow;
//   3    the whole file through `DesiredState.build` with `--config` naming it (written to a temporary file, as
//        `build` reads it from disk): the same checks on errors and on the built state, which adds the listeners'
//        addresses, their uniqueness, the access rules and the exec program checks;
//   4    `ListenerSpec.split` (a spec prints back as written) and `ListenerSpec.address` (a socket path made
//        absolute);
//   5    `ValueSyntax.cidrBlocks`: each block contains its own network and prints in a form that parses back to it;
//   6    `ValueSyntax.socketMode`: at most 0o7777, and printed in octal parses back to the same mode;
//   7    `ValueSyntax.duration`: 0 to 86400 s, and usable as milliseconds and microseconds;
//   8    `AccountID.resolveList` for users and groups;
//   9    `SourceLines`, which quotes a value as written (a socket mode's `660` and `0o660` differ): its lines equal a
//        plain split at LF, and for an accepted TOML document the text at every value's position starts the way
//        that value is written (a string with a quote, an array with `[`, …).
// Listener addresses with a host name are skipped (-1): resolving them would wait for DNS.
@testable import ServerdConfiguration
import FamilyServer
import FuzzDriver
import Glibc

/// The path the in-memory file is read as.
private let configPath = "/fuzz/serverd.toml"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return -1 }
    guard size >= 1 else { return -1 }
    let selector = bytes[0] % 10
    let body = Array(UnsafeBufferPointer(start: bytes + 1, count: size - 1))
    let text = String(decoding: body, as: UTF8.self)
    switch selector {
    case 0...2:
        return checkFile(body)
    case 3:
        return buildFromDisk(body)
    case 4:
        guard let spec = try? ListenerSpec.split(text) else { return 0 }
        guard !spec.address.isEmpty, "\(spec.service.rawValue)@\(spec.address)" == text else {
            fail("ListenerSpec.split '\(text)' -> \(spec.service), '\(spec.address)'")
        }
        if FuzzChecks.wouldResolveHostName(spec.address) { return -1 }
        if let parsed = try? ListenerSpec.address(spec.address, relativeTo: "/fuzz"),
            let problem = FuzzChecks.problem(address: parsed)
        {
            fail("'\(text)': \(problem)")
        }
    case 5:
        if let blocks = try? ValueSyntax.cidrBlocks(text) {
            guard !blocks.isEmpty else { fail("CIDR list '\(text)' accepted as empty") }
            for block in blocks {
                if let problem = FuzzChecks.problem(block: block) { fail("CIDR '\(text)': \(problem)") }
            }
        }
    case 6:
        if let mode = try? ValueSyntax.socketMode(text) {
            guard mode <= ValueSyntax.maximumSocketMode else { fail("socket mode '\(text)' -> \(mode)") }
            guard (try? ValueSyntax.socketMode("0" + String(mode, radix: 8))) == mode else {
                fail("socket mode '\(text)' -> 0o\(String(mode, radix: 8)), which does not parse back")
            }
        }
    case 7:
        if let duration = try? ValueSyntax.duration(text), let problem = FuzzChecks.problem(duration: duration, text) {
            fail("seconds '\(text)': \(problem)")
        }
    case 8:
        for kind in [AccountID.Kind.user, .group] {
            if let ids = try? AccountID.resolveList(text, kind: kind), ids.isEmpty || ids.contains(UInt32.max) {
                fail("\(kind.idName) list '\(text)' -> \(ids)")
            }
        }
    default:
        checkSourceLines(body)
    }
    return 0
}

private func fail(_ message: String) -> Never {
    let line = "fuzz-config: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    abort()
}

/// A refusal of the file at `path`: exit 78, one line, starting with the path.
private func checkRefusal(_ error: DaemonError, path: String) {
    guard error.status == .configuration else { fail("status \(error.status) for a file error: \(error.message)") }
    guard error.message.hasPrefix(path) else { fail("message does not name the file: \(error.message)") }
    guard !error.message.contains("\n"), !error.message.contains("\r") else { fail("message of several lines: \(error.message)") }
}

/// Selectors 0…2: the file in memory, then the resolution `DesiredState.build` does.
private func checkFile(_ bytes: [UInt8]) -> Int32 {
    let file: ConfigFile
    do {
        file = try ConfigFile(path: configPath, bytes: bytes)
    } catch {
        checkRefusal(error, path: configPath)
        return 0
    }
    checkPlaces(file, path: configPath)
    if file.listeners.contains(where: { FuzzChecks.wouldResolveHostName(spec: $0.text) }) { return -1 }
    let daemonValues = OptionTable.resolve(.daemon, layers: [file.topLevel])
    if let problem = FuzzChecks.problem(in: daemonValues, scope: .daemon) { fail("top level: \(problem)") }
    if let problem = FuzzChecks.problem(in: DaemonSettings(values: daemonValues)) { fail("settings: \(problem)") }
    for listen in file.listeners {
        guard let spec = try? ListenerSpec.split(listen.text) else { continue }
        let service = spec.service
        if let parsed = try? ListenerSpec.address(spec.address, relativeTo: "/fuzz"),
            let problem = FuzzChecks.problem(address: parsed)
        {
            fail("\(listen.place): \(problem)")
        }
        var values = OptionTable.resolve(.listener, layers: [file.topLevel, listen.options])
        if service != .exec { values["exec"] = nil }
        if let problem = FuzzChecks.problem(in: values, scope: .listener) { fail("\(listen.place): \(problem)") }
        let policy = ListenerPolicy(service: service, values: values)
        guard policy.service == service else { fail("\(listen.place): policy of \(policy.service), not \(service)") }
        if let problem = FuzzChecks.problem(in: policy) { fail("\(listen.place): \(problem)") }
    }
    return 0
}

/// Every place an accepted file records names the file.
private func checkPlaces(_ file: ConfigFile, path: String) {
    var places = file.topLevel.entries.values.map(\.place)
    for listen in file.listeners {
        places.append(listen.place)
        places += listen.options.entries.values.map(\.place)
    }
    for place in places where !place.hasPrefix(path + ":") {
        fail("place '\(place)' does not name the file")
    }
}

/// The temporary file selector 3 writes each input to: made at the first such input, removed at exit.
enum Temporary {
    static let file: (path: String, fd: Int32) = {
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((directory + "/fuzz-config.XXXXXX.toml").utf8CString)
        let fd = mkstemps(&template, 5)
        guard fd >= 0 else { fail("mkstemps in \(directory): \(String(cString: strerror(errno)))") }
        atexit { _ = unlink(Temporary.file.path) }
        return (template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, fd)
    }()
}

/// Selector 3: the file through `DesiredState.build`, from disk as the daemon reads it.
private func buildFromDisk(_ bytes: [UInt8]) -> Int32 {
    // Skip inputs whose listeners would resolve a host name (and keep the files the parser refuses: those never
    // reach an address).
    if let file = try? ConfigFile(path: configPath, bytes: bytes),
        file.listeners.contains(where: { FuzzChecks.wouldResolveHostName(spec: $0.text) })
    {
        return -1
    }
    let (path, fd) = Temporary.file
    guard ftruncate(fd, 0) == 0 else { fail("ftruncate: \(String(cString: strerror(errno)))") }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + written, $0.count - written, off_t(written)) }
        guard count > 0 else { fail("pwrite: \(String(cString: strerror(errno)))") }
        written += count
    }
    let state: DesiredState
    do {
        state = try DesiredState.build(
            Invocation(configFile: path, workingDirectory: "/fuzz"), implicitListeners: { _ throws(DaemonError) in [] })
    } catch {
        checkRefusal(error, path: path)
        return 0
    }
    if let problem = FuzzChecks.problem(in: state.daemonValues, scope: .daemon) { fail("top level: \(problem)") }
    if let problem = FuzzChecks.problem(in: state.settings) { fail("settings: \(problem)") }
    var identities = Set<ListenerIdentity>()
    for listener in state.listeners {
        guard listener.place.hasPrefix(path + ":") else { fail("listener place '\(listener.place)'") }
        guard identities.insert(listener.identity).inserted else { fail("\(listener.identity) declared twice") }
        if let problem = FuzzChecks.problem(address: listener.identity.address) { fail("\(listener.place): \(problem)") }
        if let problem = FuzzChecks.problem(in: listener.values, scope: .listener) { fail("\(listener.place): \(problem)") }
        if let problem = FuzzChecks.problem(in: listener.policy) { fail("\(listener.place): \(problem)") }
        if listener.policy.service == .exec, listener.policy.exec.first?.isEmpty ?? true {
            fail("\(listener.place): exec listener without a program")
        }
    }
    return 0
}

/// Selector 9: `SourceLines` against a plain split at LF, and TOML value positions against what is written there.
private func checkSourceLines(_ bytes: [UInt8]) {
    let lines = SourceLines(bytes)
    let model = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
    // Every line from column 1, a column inside it, and the first column past it (where its LF is). Not further:
    // positions come from the TOML parser, which never places one beyond the end of a line, and SourceLines does not
    // check that (a column past the LF reads on into the next line).
    for (index, line) in model.enumerated() {
        for column in [1, line.count / 2 + 1, line.count + 1] {
            let expected = column <= line.count ? String(decoding: line.dropFirst(column - 1), as: UTF8.self) : ""
            let found = lines.text(at: TOMLPosition(line: index + 1, column: column))
            guard found == expected else {
                fail("SourceLines at \(index + 1):\(column): '\(found)', expected '\(expected)'")
            }
        }
    }
    for position in [TOMLPosition(line: 0, column: 1), TOMLPosition(line: 1, column: 0),
        TOMLPosition(line: model.count + 1, column: 1), TOMLPosition(line: Int.max, column: Int.max)]
    {
        guard lines.text(at: position).isEmpty else { fail("SourceLines at \(position) outside the text") }
    }
    guard let document = try? TOMLParser.parse(bytes) else { return }
    checkWritten(document, lines)
}

/// The text at each value's position starts the way a value of its type is written.
private func checkWritten(_ table: TOMLTable, _ lines: SourceLines) {
    for entry in table.entries {
        guard !lines.text(at: entry.keyPosition).isEmpty else { fail("no text at key \(entry.key)'s \(entry.keyPosition)") }
        checkWritten(entry.node, lines)
    }
}

private func checkWritten(_ node: TOMLNode, _ lines: SourceLines) {
    let written = lines.text(at: node.position)
    let starts: String
    switch node.value {
    case .string: starts = "\"'"
    case .integer: starts = "+-0123456789"
    case .float: starts = "+-0123456789in"
    case .boolean: starts = "tf"
    case .dateTime: starts = "0123456789"
    case .array(let elements):
        starts = "["
        elements.forEach { checkWritten($0, lines) }
    case .table(let table):
        // A header's `[`, an inline table's `{`, or the key of a dotted key: no one character to expect.
        starts = ""
        checkWritten(table, lines)
    }
    if !starts.isEmpty {
        guard let first = written.first, starts.contains(first) else {
            fail("a \(node.value.typeName) at \(node.position), where '\(written)' is written")
        }
    }
}

// The program's main: libFuzzer's driver, with its usual flags (-max_total_time, -runs, corpus directories, …),
// calling the function above for every input.
var arguments = CommandLine.argc
var argumentValues: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&arguments, &argumentValues, fuzzConfig))
