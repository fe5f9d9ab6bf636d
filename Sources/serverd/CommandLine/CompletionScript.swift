/// `serverd --generate-completion-script bash|zsh|fish`: shell completion written from ``OptionTable``, so that the
/// packaged completions always offer exactly the options and choices the parser takes.
enum CompletionScript {
    /// The shells a script can be written for.
    static let shells = ["bash", "zsh", "fish"]

    /// The script for `shell`, or `nil` for an unknown shell.
    static func script(for shell: String) -> String? {
        switch shell {
        case "bash": return bash
        case "zsh": return zsh
        case "fish": return fish
        default: return nil
        }
    }

    /// The words an option's value may be, when they are a fixed set.
    private static func choices(_ kind: OptionKind) -> [String]? {
        switch kind {
        case .model: return ModelName.allCases.map(\.rawValue)
        case .logLevel: return LogLevelName.allCases.map(\.rawValue)
        case .logFormat: return LogFormatName.allCases.map(\.rawValue)
        case .onOff: return ["on", "off"]
        default: return nil
        }
    }

    private static var flags: [Option] { OptionTable.all.filter { $0.flag != nil } }
    private static let extraFlags = ["--version", "--help"]

    private static var bash: String {
        let words = (flags.compactMap(\.flag) + extraFlags).joined(separator: " ")
        var cases: [String] = []
        for option in flags where option.kind != .flag {
            guard let flag = option.flag else { continue }
            if let choices = choices(option.kind) {
                cases.append("        \(flag)) COMPREPLY=($(compgen -W \"\(choices.joined(separator: " "))\" -- \"$cur\")); return ;;")
            } else if option.kind == .path {
                cases.append("        \(flag)) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;")
            } else {
                cases.append("        \(flag)) return ;;")
            }
        }
        return """
            # bash completion for serverd, written by serverd --generate-completion-script bash
            _serverd() {
                local cur prev
                cur="${COMP_WORDS[COMP_CWORD]}"
                prev="${COMP_WORDS[COMP_CWORD-1]}"
                case "$prev" in
            \(cases.joined(separator: "\n"))
                esac
                COMPREPLY=($(compgen -W "\(words)" -- "$cur"))
            }
            complete -F _serverd serverd

            """
    }

    private static var zsh: String {
        var specs: [String] = []
        for option in flags {
            guard let flag = option.flag else { continue }
            let help = option.help.prefix { $0 != "." && $0 != ";" }.replacingQuotes()
            var spec = "'\(flag)[\(help)]"
            if let choices = choices(option.kind) {
                spec += ":\(option.kind.valueName):(\(choices.joined(separator: " ")))"
            } else if option.kind == .path {
                spec += ":\(option.kind.valueName):_files"
            } else if option.kind != .flag {
                spec += ":\(option.kind.valueName): "
            }
            specs.append(spec + "'")
        }
        specs += ["'--version[print the version]'", "'--help[print the help]'", "'*::program:_command_names -e'"]
        return "#compdef serverd\n# zsh completion for serverd, written by serverd --generate-completion-script zsh\n"
            + "_arguments -s \\\n    " + specs.joined(separator: " \\\n    ") + "\n"
    }

    private static var fish: String {
        var lines = ["# fish completion for serverd, written by serverd --generate-completion-script fish"]
        for option in flags {
            let help = option.help.prefix { $0 != "." && $0 != ";" }.replacingQuotes()
            var line = "complete -c serverd -l \(option.name) -d '\(help)'"
            if let choices = choices(option.kind) {
                line += " -x -a '\(choices.joined(separator: " "))'"
            } else if option.kind == .path {
                line += " -r -F"
            } else if option.kind != .flag {
                line += " -x"
            }
            lines.append(line)
        }
        lines += ["complete -c serverd -l version -d 'Print the version'", "complete -c serverd -l help -d 'Print the help'"]
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Substring {
    /// The text with single quotes and brackets, which the completion syntaxes give meaning, left out.
    fileprivate func replacingQuotes() -> String {
        String(filter { $0 != "'" && $0 != "[" && $0 != "]" })
    }
}
