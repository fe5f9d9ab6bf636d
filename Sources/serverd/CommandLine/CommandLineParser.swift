import Glibc

/// Reads serverd's arguments with ``OptionTable``: `--NAME VALUE` or `--NAME=VALUE` for an option with a value,
/// `--NAME` for a flag, `--` before the program of exec listeners. Every error is a usage error (exit 64) naming the
/// option and, for a mistyped one, the option it most likely meant.
enum CommandLineParser {
    /// What `--version` prints.
    static let version = "serverd 0.2.0"

    /// Parses the arguments after the program name.
    /// - Parameters:
    ///   - arguments: `CommandLine.arguments.dropFirst()`.
    ///   - workingDirectory: The absolute working directory, which relative paths are taken from.
    /// - Throws: ``DaemonError`` with status `.usage`.
    static func parse(_ arguments: [String], workingDirectory: String) throws(DaemonError) -> CommandLineRequest {
        var invocation = Invocation(workingDirectory: workingDirectory)
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                let program = Array(arguments[index...])
                guard let name = program.first else { break }
                guard !name.isEmpty else { throw DaemonError(.usage, "-- PROGRAM: the program name is empty") }
                if let exec = OptionTable.named("exec") {
                    invocation.options.set(exec, .words(program), place: "-- PROGRAM")
                }
                break
            }
            if argument == "--help" || argument == "-h" { return .print(HelpText.text) }
            if argument == "--version" { return .print(version) }
            if argument == "--generate-completion-script" {
                let shell = index < arguments.count ? arguments[index] : ""
                guard let script = CompletionScript.script(for: shell) else {
                    throw DaemonError(
                        .usage, "--generate-completion-script: expected one of \(CompletionScript.shells.joined(separator: ", "))")
                }
                return .print(script)
            }
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw DaemonError(.usage, "unexpected argument '\(argument)' (options start with --; a program goes after --)")
            }
            let body = argument.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let attached = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
            guard let option = OptionTable.named(name), let flag = option.flag else {
                let names = OptionTable.all.filter { $0.flag != nil }.map(\.name) + ["help", "version"]
                let hint = Suggestion.closest(to: name, among: names).flatMap { $0 == name ? nil : $0 }
                    .map { " (did you mean --\($0)?)" } ?? ""
                throw DaemonError(.usage, "unknown option '--\(name)'\(hint)")
            }
            var text: String
            if option.kind == .flag {
                guard attached == nil else { throw DaemonError(.usage, "\(flag) takes no value") }
                text = ""
            } else if let attached {
                text = attached
            } else {
                guard index < arguments.count else {
                    throw DaemonError(.usage, "\(flag): missing value (\(option.kind.valueName))")
                }
                text = arguments[index]
                index += 1
            }
            try take(option, text, into: &invocation)
        }
        return .run(invocation)
    }

    private static func take(_ option: Option, _ text: String, into invocation: inout Invocation) throws(DaemonError) {
        let flag = "--" + option.name
        switch option.name {
        case "listen":
            do throws(OptionValueError) {
                _ = try ListenerSpec.split(text)
            } catch {
                throw DaemonError(.usage, "--listen '\(text)': \(error.reason)")
            }
            invocation.listen.append(text)
            return
        case "check-config":
            invocation.checkOnly = true
            return
        default:
            break
        }
        let value: OptionValue
        do throws(OptionValueError) {
            value = try option.kind.parse(text, relativeTo: invocation.workingDirectory)
        } catch {
            throw DaemonError(.usage, "\(flag): \(error.reason)")
        }
        if option.name == "config" {
            invocation.configFile = value.text
        } else {
            invocation.options.set(option, value, place: flag, appending: option.kind.isList)
        }
    }
}
