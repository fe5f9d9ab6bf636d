/// `serverd --help`, written from ``OptionTable``.
enum HelpText {
    static var text: String {
        var lines = [
            "USAGE: serverd [OPTIONS] [-- PROGRAM ARGS…]",
            "",
            "Serve echo, discard, daytime, stamp and exec over TCP, UDP and Unix sockets.",
            "",
            "ADDRESS is tcp://HOST:PORT or udp://HOST:PORT (HOST: 127.0.0.1, [::1], * for the dual-stack wildcard,",
            "0.0.0.0, or a name), unix:PATH, unix:@NAME, unixgram:PATH, unixgram:@NAME, systemd:NAME (an inherited",
            "socket by its fd name), systemd (every unclaimed inherited socket) or fd:N.",
            "",
            "OPTIONS:",
        ]
        for option in OptionTable.all where option.scope != .execChild {
            let flag = option.flag.map { $0 + (option.kind.valueName.isEmpty ? "" : " " + option.kind.valueName) }
            let head = option.name == "listen" ? "--listen SERVICE@ADDRESS" : flag ?? "-- PROGRAM ARGS"
            lines.append("  \(head)")
            let scope = option.scope == .listener ? " Per listener." : ""
            lines += wrap("\(option.help)\(scope) (default: \(option.defaultDisplay))", indent: 8)
        }
        lines += [
            "  --version", "        Print the version and exit.",
            "  -h, --help", "        Print this help and exit.",
            "",
            "Every option but --config and --check-config is also a key of the --config TOML file; command-line",
            "options win over its top level and its [[listener]] tables win over both. SIGHUP re-reads the file and",
            "reopens --log-file.",
            "",
            "Keys of a [[listener]] table only, for the exec children (and wait-mode program) of that listener:",
        ]
        for option in OptionTable.all where option.scope == .execChild {
            let value = option.kind.valueName.isEmpty ? "" : " = " + option.kind.valueName
            lines.append("  \(option.name)\(value)")
            lines += wrap("\(option.help) (default: \(option.defaultDisplay))", indent: 8)
        }
        lines += [
            "",
            "Examples:",
            "  serverd --listen exec@tcp://127.0.0.1:2000 -- /usr/bin/env",
            "        runs env per connection, the connection on its stdin and stdout (UCSPI variables set)",
            "  serverd --listen exec@udp://127.0.0.1:69 --wait -- /usr/sbin/in.tftpd -s /srv/tftp",
            "        wait mode: runs in.tftpd with the UDP socket itself on fd 0, 1 and 3 when a request comes,",
            "        and again after it exits, as inetd's wait services",
            "",
            "Exit status: 0 stopped cleanly, 64 usage error, 78 configuration error, 69 address in use, 71 system",
            "error, 77 permission denied.",
        ]
        return lines.joined(separator: "\n")
    }

    /// `text` in lines of at most 100 characters, each indented by `indent` spaces.
    private static func wrap(_ text: String, indent: Int) -> [String] {
        let margin = String(repeating: " ", count: indent)
        var lines: [String] = []
        var line = margin
        for word in text.split(separator: " ") {
            if line.count > indent && line.count + 1 + word.count > 100 {
                lines.append(line)
                line = margin
            }
            line += (line.count > indent ? " " : "") + word
        }
        lines.append(line)
        return lines
    }
}
