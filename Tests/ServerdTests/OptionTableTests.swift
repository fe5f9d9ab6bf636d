import Foundation
import XCTest

@testable import serverd

/// `OptionTable` declares every option once; these tests hold the rest to it: each entry sets its own field, and
/// `--help` and serverd(8) document exactly the table's options.
final class OptionTableTests: XCTestCase {
    /// Every field of a listener's policy, by the option that sets it (`service` aside: `listen` gives it).
    private static let policyFields: [String: @Sendable (ListenerPolicy) -> String] = [
        "exec": { "\($0.exec)" },
        "socket-mode": { "\(String(describing: $0.socketMode))" },
        "allow-uid": { "\(String(describing: $0.allowUIDs))" },
        "allow-gid": { "\(String(describing: $0.allowGIDs))" },
        "allow": { "\(String(describing: $0.allow))" },
        "deny": { "\($0.deny)" },
        "max-connections": { "\($0.maxConnections)" },
        "max-per-source": { "\(String(describing: $0.maxPerSource))" },
        "max-rate": { "\($0.maxRate)" },
        "max-rate-per-source": { "\($0.maxRatePerSource)" },
        "idle-timeout": { "\($0.idleTimeout)" },
        "max-line": { "\($0.maxLine)" },
        "request-timeout": { "\($0.requestTimeout)" },
        "min-rate": { "\($0.minRate)" },
        "source-prefix-v4": { "\($0.sourcePrefixV4)" },
        "source-prefix-v6": { "\($0.sourcePrefixV6)" },
        "reply-rate-per-source": { "\($0.replyRatePerSource)" },
        "wait": { "\($0.waitMode)" },
        "resolve": { "\($0.resolve)" },
        "wait-start-limit": { "\($0.waitStartLimit)" },
        "log-connections": { "\($0.logConnections)" },
    ]

    /// Every field of the daemon-wide settings, by the option that sets it.
    private static let settingsFields: [String: @Sendable (DaemonSettings) -> String] = [
        "model": { "\($0.model)" },
        "workers": { "\(String(describing: $0.workers))" },
        "prefork": { "\($0.prefork)" },
        "drain-timeout": { "\($0.drainTimeout)" },
        "daemon": { "\($0.daemonize)" },
        "fd-store": { "\($0.fdStore)" },
        "pidfile": { "\(String(describing: $0.pidfile))" },
        "user": { "\(String(describing: $0.user))" },
        "group": { "\(String(describing: $0.group))" },
        "log-level": { "\($0.logLevel)" },
        "log-file": { "\(String(describing: $0.logFile))" },
        "log-format": { "\($0.logFormat)" },
    ]

    /// A value of the option's kind, as the command line writes it and as parsed, that differs from its default.
    private func sample(_ option: Option) throws -> (text: String, value: OptionValue) {
        switch option.kind {
        case .flag: return ("", .flag(true))
        case .integer(let range):
            let value = option.defaultValue == .integer(range.lowerBound) ? range.upperBound : range.lowerBound
            return (String(value), .integer(value))
        case .seconds:
            return ("1.25", .duration(.milliseconds(1250)))
        case .path: return ("/sample/\(option.name)", .text("/sample/\(option.name)"))
        case .name: return ("sample-\(option.name)", .text("sample-\(option.name)"))
        case .model:
            let model = try XCTUnwrap(ModelName.allCases.first { option.defaultValue != .model($0) })
            return (model.rawValue, .model(model))
        case .logLevel:
            let level = try XCTUnwrap(LogLevelName.allCases.first { option.defaultValue != .logLevel($0) })
            return (level.rawValue, .logLevel(level))
        case .onOff:
            let on = option.defaultValue != .flag(true)
            return (on ? "on" : "off", .flag(on))
        case .logFormat:
            let format = try XCTUnwrap(LogFormatName.allCases.first { option.defaultValue != .logFormat($0) })
            return (format.rawValue, .logFormat(format))
        case .uids, .gids: return ("4242,0", .ids([4242, 0]))
        case .blocks: return ("10.0.0.0/8", .blocks([try CIDRBlock(parsing: "10.0.0.0/8")]))
        case .socketMode: return ("0640", .mode(0o640))
        case .program: return ("/bin/sample", .words(["/bin/sample"]))
        case .account: return ("nobody", .account(try ExecIdentity.account("nobody")))
        case .group: return ("nogroup", .ids([try XCTUnwrap(AccountID.group(named: "nogroup"))]))
        case .environment: return ("LANG=C,-HOME", .words(["LANG=C", "-HOME"]))
        }
    }

    func testEveryOptionNameIsUnique() {
        let names = OptionTable.all.map(\.key)
        XCTAssertEqual(Set(names).count, names.count, "duplicates: \(names.filter { name in names.filter { $0 == name }.count > 1 })")
        for option in OptionTable.all {
            XCTAssertFalse(option.name.isEmpty)
            XCTAssertTrue(
                option.name.allSatisfy { $0 == "-" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }, option.name)
            XCTAssertNotEqual(option.name, "help")
            XCTAssertNotEqual(option.name, "version")
            XCTAssertFalse(option.help.isEmpty, "\(option.name) has help")
        }
    }

    /// Each listener option, given a sample value, changes exactly its own field of the policy.
    func testEveryListenerOptionSetsItsOwnPolicyField() throws {
        let defaults = OptionTable.resolve(.listener, layers: [])
        let baseline = ListenerPolicy(service: .exec, values: defaults)
        let listenerOptions = OptionTable.all.filter { $0.scope == .listener }
        XCTAssertEqual(
            Set(listenerOptions.map(\.name)), Set(Self.policyFields.keys),
            "every listener option has a policy field this test reads, and every field an option")
        for option in listenerOptions {
            let (text, value) = try sample(option)
            if option.kind != .program {
                XCTAssertEqual(try option.kind.parse(text, relativeTo: "/"), value, "--\(option.name) \(text)")
            }
            var values = defaults
            values[option.name] = value
            let policy = ListenerPolicy(service: .exec, values: values)
            XCTAssertNotEqual(policy, baseline, "\(option.name) changes nothing")
            for (name, field) in Self.policyFields {
                if name == option.name {
                    XCTAssertNotEqual(field(policy), field(baseline), "\(option.name) does not set its field")
                } else {
                    XCTAssertEqual(field(policy), field(baseline), "\(option.name) sets the field of \(name)")
                }
            }
            var settings = DaemonSettings(values: OptionTable.resolve(.daemon, layers: []))
            let before = settings
            option.apply(value, to: &settings)
            XCTAssertEqual(settings, before, "\(option.name) changes the daemon's settings")
        }
    }

    /// Each `[[listener]]`-only option, given a sample value, changes the exec identity of the policy and nothing else;
    /// none is a command-line flag, and none is found outside a `[[listener]]` table.
    func testEveryExecChildOptionSetsOnlyTheExecIdentity() throws {
        let defaults = OptionTable.resolve(.listener, layers: [])
        let baseline = ListenerPolicy(service: .exec, values: defaults)
        let options = OptionTable.all.filter { $0.scope == .execChild }
        XCTAssertEqual(
            Set(options.map(\.name)),
            ["user", "group", "chroot", "chdir", "umask", "env", "rlimit-nofile", "rlimit-as", "rlimit-cpu", "rlimit-nproc"])
        var identities: Set<String> = []
        for option in options {
            XCTAssertNil(option.flag, option.name)
            XCTAssertEqual(OptionTable.named(option.name, inListener: true)?.key, option.key)
            XCTAssertNotEqual(OptionTable.named(option.name)?.key, option.key)
            let (text, value) = try sample(option)
            XCTAssertEqual(try option.kind.parse(text, relativeTo: "/"), value, "\(option.name) \(text)")
            var values = defaults
            values[option.name] = value
            var policy = ListenerPolicy(service: .exec, values: values)
            XCTAssertNotEqual(policy.execIdentity, baseline.execIdentity, "\(option.name) changes nothing")
            identities.insert("\(policy.execIdentity)")
            policy.execIdentity = baseline.execIdentity
            XCTAssertEqual(policy, baseline, "\(option.name) changes more than the exec identity")
        }
        XCTAssertEqual(identities.count, options.count, "each option sets a field of its own")
    }

    /// Each daemon-wide option, given a sample value, changes exactly its own field of the settings.
    func testEveryDaemonOptionSetsItsOwnSettingsField() throws {
        let defaults = OptionTable.resolve(.daemon, layers: [])
        let baseline = DaemonSettings(values: defaults)
        let daemonOptions = OptionTable.all.filter { $0.scope == .daemon }
        XCTAssertEqual(
            Set(daemonOptions.map(\.name)), Set(Self.settingsFields.keys),
            "every daemon option has a settings field this test reads, and every field an option")
        for option in daemonOptions {
            let (text, value) = try sample(option)
            XCTAssertEqual(try option.kind.parse(text, relativeTo: "/"), value, "--\(option.name) \(text)")
            var values = defaults
            values[option.name] = value
            let settings = DaemonSettings(values: values)
            XCTAssertNotEqual(settings, baseline, "\(option.name) changes nothing")
            for (name, field) in Self.settingsFields {
                if name == option.name {
                    XCTAssertNotEqual(field(settings), field(baseline), "\(option.name) does not set its field")
                } else {
                    XCTAssertEqual(field(settings), field(baseline), "\(option.name) sets the field of \(name)")
                }
            }
            var policy = ListenerPolicy(service: .exec, values: OptionTable.resolve(.listener, layers: []))
            let before = policy
            option.apply(value, to: &policy)
            XCTAssertEqual(policy, before, "\(option.name) changes a listener's policy")
        }
    }

    /// The same through the command line and the file: each option's sample reaches the desired state.
    func testEveryOptionReachesTheDesiredStateFromTheCommandLine() throws {
        for option in OptionTable.all where option.scope == .listener || option.scope == .daemon {
            let (text, _) = try sample(option)
            // exec runs only on exec listeners; access rules must fit some listener: one of each family. prefork is
            // refused under any model but forking: that option and its baseline get --model forking.
            let model = option.name == "prefork" ? ["--model", "forking"] : []
            var arguments = model + ["--listen", "exec@unix:@serverd-option-table", "--listen", "exec@tcp://127.0.0.1:0"]
            if let flag = option.flag {
                arguments += option.kind == .flag ? [flag] : [flag, text]
            }
            arguments += ["--", option.kind == .program ? text : "/bin/cat"]
            let request = try CommandLineParser.parse(arguments, workingDirectory: "/")
            guard case .run(let invocation) = request else { return XCTFail("\(arguments) did not ask to run") }
            let state = try DesiredState.build(invocation, implicitListeners: { _ throws(DaemonError) in [] })
            let baselineRequest = try CommandLineParser.parse(
                model + ["--listen", "exec@unix:@serverd-option-table", "--listen", "exec@tcp://127.0.0.1:0", "--", "/bin/cat"],
                workingDirectory: "/")
            guard case .run(let baselineInvocation) = baselineRequest else { return XCTFail("no baseline") }
            let baseline = try DesiredState.build(baselineInvocation, implicitListeners: { _ throws(DaemonError) in [] })
            if option.scope == .daemon {
                XCTAssertNotEqual(state.settings, baseline.settings, "--\(option.name) \(text)")
            } else {
                XCTAssertNotEqual(
                    state.listeners.map(\.policy), baseline.listeners.map(\.policy), "--\(option.name) \(text)")
            }
        }
    }

    /// `--help` names every option of the table, with its value placeholder.
    func testHelpNamesEveryOption() {
        let help = HelpText.text
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for option in OptionTable.all {
            let head: String
            if option.name == "listen" {
                head = "  --listen SERVICE@ADDRESS"
            } else if option.scope == .execChild {
                head = "  \(option.name) = \(option.kind.valueName)"
            } else if let flag = option.flag {
                head = "  " + flag + (option.kind.valueName.isEmpty ? "" : " " + option.kind.valueName)
            } else {
                head = "  -- PROGRAM ARGS"
            }
            XCTAssertTrue(lines.contains(head), "--help lacks the line '\(head)'")
        }
        XCTAssertTrue(lines.contains("  --version"))
        XCTAssertTrue(lines.contains("  -h, --help"))
        // No option that the table lacks.
        let heads = lines.filter { $0.hasPrefix("  --") || $0.hasPrefix("  -h") }
        let named = Set(heads.compactMap { line -> String? in
            let word = line.dropFirst(2).split(separator: " ").first.map(String.init) ?? ""
            return word.hasPrefix("--") && word.count > 2 ? String(word.dropFirst(2)) : nil
        })
        let known = Set(OptionTable.all.map(\.name) + ["version"])
        XCTAssertEqual(named.subtracting(known), [], "--help documents options the table lacks")
    }

    /// The OPTIONS section of serverd(8), and the option names of its item heads (`.TP`/`.TQ` then `.B`, `.BI` or
    /// `.BR` with `\-\-NAME`).
    private func manPageOptions() throws -> (section: String, documented: Set<String>, program: Bool) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("packaging/serverd.8"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try XCTUnwrap(lines.firstIndex(of: ".SH OPTIONS"), "serverd(8) has an OPTIONS section")
        let end = lines[(start + 1)...].firstIndex { $0.hasPrefix(".SH ") } ?? lines.endIndex
        let section = Array(lines[(start + 1)..<end])
        var documented: Set<String> = []
        var program = false
        for (index, line) in section.enumerated() where index > 0 {
            guard section[index - 1] == ".TP" || section[index - 1] == ".TQ",
                line.hasPrefix(".B ") || line.hasPrefix(".BI ") || line.hasPrefix(".BR ")
            else { continue }
            // `\-\-max\-connections " N"`: the name runs from `\-\-` over letters, digits and `\-`.
            var rest = Substring(line)
            while let range = rest.range(of: "\\-\\-") {
                var name = ""
                var cursor = range.upperBound
                while cursor < rest.endIndex {
                    let character = rest[cursor]
                    if character.isASCII && (character.isLetter || character.isNumber) {
                        name.append(character)
                        cursor = rest.index(after: cursor)
                    } else if rest[cursor...].hasPrefix("\\-") {
                        name.append("-")
                        cursor = rest.index(cursor, offsetBy: 2)
                    } else {
                        break
                    }
                }
                if name.isEmpty { program = true } else { documented.insert(name) }
                rest = rest[cursor...]
            }
        }
        return (section.joined(separator: "\n"), documented, program)
    }

    /// serverd(8) documents exactly the table's options in OPTIONS, `--help` and `--version` aside.
    func testManPageDocumentsExactlyTheTableOptions() throws {
        let (section, documented, program) = try manPageOptions()
        for option in OptionTable.all {
            if option.scope == .execChild {
                continue  // testManPageDocumentsTheListenerTableKeys
            } else if let flag = option.flag {
                let roff = flag.replacingOccurrences(of: "-", with: "\\-")
                XCTAssertTrue(section.contains(roff), "serverd(8) OPTIONS lacks \(roff)")
                XCTAssertTrue(documented.contains(option.name), "serverd(8) OPTIONS has no item for \(flag)")
            } else {
                XCTAssertTrue(program, "serverd(8) OPTIONS has no item for -- PROGRAM ARGS (\(option.name))")
            }
        }
        let tableNames = Set(OptionTable.all.filter { $0.flag != nil }.map(\.name))
        let extra = documented.subtracting(tableNames).subtracting(["help", "version", "generate-completion-script"])
        XCTAssertEqual(extra, [], "serverd(8) OPTIONS documents options that OptionTable lacks")
    }

    /// serverd(8) has an item for each key of `[[listener]]` alone, in its CONFIGURATION FILE section.
    func testManPageDocumentsTheListenerTableKeys() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("packaging/serverd.8"), encoding: .utf8)
        let start = try XCTUnwrap(text.range(of: ".SH CONFIGURATION FILE"))
        let end = text[start.upperBound...].range(of: "\n.SH ")?.lowerBound ?? text.endIndex
        let section = text[start.upperBound..<end]
        for option in OptionTable.all where option.scope == .execChild {
            let roff = option.name.replacingOccurrences(of: "-", with: "\\-")
            XCTAssertTrue(section.contains(".TP\n.BI \"\(roff) = \" "), "serverd(8) has no item for \(option.name)")
        }
    }
}
