import CShims

/// Every option of serverd, once (SPEC sections 3 and 5). Adding an option is one entry here and the code that uses
/// its field; the command line, the configuration file, their merge, the checks, `--help` and the test that holds
/// serverd(8) to this list follow from the entry.
enum OptionTable {
    static let all: [Option] = [
        // MARK: How to run serverd this time
        Option(
            name: "listen", kind: .name, scope: .listeners, reload: .applies, defaultValue: nil,
            defaultText: "the inherited sockets, else the built-in set",
            help: "Serve SERVICE (echo, discard, daytime, stamp or exec) on ADDRESS; repeatable, adds to the --config "
                + "file's listeners.",
            field: .none),
        Option(
            name: "config", kind: .path, scope: .invocation, reload: .applies, defaultValue: nil, defaultText: "none",
            help: "Read listeners and options from this TOML file; SIGHUP reads it again.", field: .none),
        Option(
            name: "check-config", kind: .flag, scope: .invocation, reload: .applies, defaultValue: nil,
            defaultText: "off",
            help: "Check the options and the configuration file as a start would, print the listeners that would "
                + "start, and exit.",
            field: .none),

        // MARK: The whole daemon
        Option(
            name: "model", kind: .model, scope: .daemon, reload: .atRestart, defaultValue: .model(.threading),
            defaultText: "",
            help: "Processing model of stream listeners: serial, threading, forking or event (non-blocking "
                + "connections on epoll, many per thread, see --workers).",
            field: .daemon { $0.model = $1.modelName }),
        Option(
            name: "workers", kind: .integer(OptionRange.workers), scope: .daemon, reload: .atRestart,
            defaultValue: nil, defaultText: "the number of CPUs it may run on (its CPU affinity)",
            help: "The event model's reactor threads, N from \(OptionRange.text(OptionRange.workers)), each with "
                + "an epoll set of its own; the stream listeners share them. Other models ignore it.",
            field: .daemon { $0.workers = $1.integer }),
        Option(
            name: "prefork", kind: .integer(OptionRange.prefork), scope: .daemon, reload: .atRestart,
            defaultValue: .integer(0), defaultText: "",
            help: "The forking model's pre-forked workers per stream listener, N from "
                + "\(OptionRange.text(OptionRange.prefork)): each serves connection after connection passed to it, "
                + "beyond them a connection gets a child of its own; SIGHUP replaces them. 0 forks a child per "
                + "connection. Only with --model forking.",
            field: .daemon { $0.prefork = $1.integer }),
        Option(
            name: "drain-timeout", kind: .seconds, scope: .daemon, reload: .applies, defaultValue: .duration(.seconds(10)),
            defaultText: "",
            help: "On stop, how long in-flight connections may take to finish, \(OptionRange.secondsText) seconds, "
                + "decimals allowed.",
            field: .daemon { $0.drainTimeout = $1.duration }),
        Option(
            name: "daemon", kind: .flag, scope: .daemon, reload: .atRestart, defaultValue: nil, defaultText: "foreground",
            help: "Detach (SysV style) once serving; logs go to syslog unless --log-file is given.",
            field: .daemon { $0.daemonize = $1.flag }),
        Option(
            name: "fd-store", kind: .flag, scope: .daemon, reload: .atRestart, defaultValue: nil, defaultText: "off",
            help: "Under systemd, hand every socket serverd binds to the fd store (FileDescriptorStoreMax=) so that it"
                + " survives a restart or crash; socket files then stay at stop.",
            field: .daemon { $0.fdStore = $1.flag }),
        Option(
            name: "pidfile", kind: .path, scope: .daemon, reload: .atRestart, defaultValue: nil, defaultText: "none",
            help: "Write the PID here once ready; refuse to start if a live process holds it; remove it on exit.",
            field: .daemon { $0.pidfile = $1.text }),
        Option(
            name: "user", kind: .name, scope: .daemon, reload: .atRestart, defaultValue: nil, defaultText: "none",
            help: "Switch to this user after binding.", field: .daemon { $0.user = $1.text }),
        Option(
            name: "group", kind: .name, scope: .daemon, reload: .atRestart, defaultValue: nil, defaultText: "none",
            help: "Switch to this group after binding.", field: .daemon { $0.group = $1.text }),
        Option(
            name: "log-level", kind: .logLevel, scope: .daemon, reload: .applies, defaultValue: .logLevel(.info),
            defaultText: "", help: "Lowest level logged: debug, info, notice, warning or error.",
            field: .daemon { $0.logLevel = $1.levelName }),
        Option(
            name: "log-file", kind: .path, scope: .daemon, reload: .applies, defaultValue: nil,
            defaultText: "stderr, or syslog with --daemon",
            help: "Append logs to this file; SIGHUP reopens it (for logrotate).",
            field: .daemon { $0.logFile = $1.text }),
        Option(
            name: "log-format", kind: .logFormat, scope: .daemon, reload: .atRestart, defaultValue: .logFormat(.text),
            defaultText: "",
            help: "text, or json: one JSON object per line in --log-file (stderr and syslog stay text).",
            field: .daemon { $0.logFormat = $1.formatName }),

        // MARK: Each listener
        Option(
            name: "exec", kind: .program, scope: .listener, reload: .applies, defaultValue: nil, defaultText: "none",
            help: "The program and arguments that exec listeners run per connection (the connection on its stdin and "
                + "stdout), or with --wait once for the socket itself: after -- on the command line, "
                + "exec = [\"PROGRAM\", \"ARG\"] in the file.",
            field: .listener { $0.exec = $0.service == .exec ? $1.words : [] }),
        Option(
            name: "wait", kind: .flag, scope: .listener, reload: .applies, defaultValue: nil, defaultText: "off",
            help: "Exec listeners: inetd's wait mode (systemd's Accept=no). serverd neither accepts nor reads; when the "
                + "socket is readable it starts the program once with the socket itself as stdin, stdout and fd 3 "
                + "(LISTEN_FDS=1, LISTEN_PID), and watches the socket again once the program exits. Required for exec "
                + "on datagram sockets.",
            field: .listener { $0.waitMode = $0.service == .exec && $1.flag }),
        Option(
            name: "resolve", kind: .flag, scope: .listener, reload: .applies, defaultValue: nil, defaultText: "off",
            help: "Exec listeners on TCP: look the client's address up in reverse DNS, on a thread of its own, and set "
                + "TCPREMOTEHOST to the name when it looks up forward to the same address. Not with --model forking.",
            field: .listener { $0.resolve = $0.service == .exec && $1.flag }),
        Option(
            name: "wait-start-limit", kind: .integer(OptionRange.waitStartLimit), scope: .listener, reload: .applies,
            defaultValue: .integer(10), defaultText: "",
            help: "Wait mode: more than N starts of the program within 10 s, N from "
                + "\(OptionRange.text(OptionRange.waitStartLimit)), pause the listener for 60 s.",
            field: .listener { $0.waitStartLimit = $1.integer }),
        Option(
            name: "socket-mode", kind: .socketMode, scope: .listener, reload: .applies, defaultValue: nil,
            defaultText: "from the umask",
            help: "Permission bits, in octal (0660 or 660), of the Unix socket files serverd creates.",
            field: .listener { $0.socketMode = $1.mode }),
        Option(
            name: "allow-uid", kind: .uids, scope: .listener, reload: .applies, defaultValue: nil,
            defaultText: "everyone",
            help: "Unix listeners: serve only peers with one of these uids (numbers or user names), or with a gid of "
                + "--allow-gid.",
            field: .listener { $0.allowUIDs = $1.ids }),
        Option(
            name: "allow-gid", kind: .gids, scope: .listener, reload: .applies, defaultValue: nil,
            defaultText: "everyone",
            help: "Unix listeners: serve only peers with one of these gids (numbers or group names), or with a uid of "
                + "--allow-uid.",
            field: .listener { $0.allowGIDs = $1.ids }),
        Option(
            name: "allow", kind: .blocks, scope: .listener, reload: .applies, defaultValue: nil, defaultText: "everyone",
            help: "Inet listeners: serve only sources in these blocks (10.0.0.0/8, ::1); an IPv6 block also holds the "
                + "IPv4-mapped form of an IPv4 source.",
            field: .listener { $0.allow = $1.blocks }),
        Option(
            name: "deny", kind: .blocks, scope: .listener, reload: .applies, defaultValue: nil, defaultText: "no one",
            help: "Inet listeners: never serve sources in these blocks; deny wins over allow.",
            field: .listener { $0.deny = $1.blocks }),
        Option(
            name: "max-connections", kind: .integer(OptionRange.maxConnections), scope: .listener, reload: .applies,
            defaultValue: .integer(1024), defaultText: "",
            help: "At most N connections at once per listener, N from \(OptionRange.text(OptionRange.maxConnections)); "
                + "at the limit, stop accepting until one ends (clients wait in the backlog).",
            field: .listener { $0.maxConnections = $1.integer }),
        Option(
            name: "max-per-source", kind: .integer(OptionRange.maxPerSource), scope: .listener, reload: .applies,
            defaultValue: nil, defaultText: "unlimited",
            help: "At most N simultaneous connections per listener from one source (an address prefix, see "
                + "--source-prefix-v4 and --source-prefix-v6) or one uid, N from "
                + "\(OptionRange.text(OptionRange.maxPerSource)); more are closed unserved.",
            field: .listener { $0.maxPerSource = $1.integer }),
        Option(
            name: "max-rate", kind: .integer(OptionRange.maxRate), scope: .listener, reload: .applies,
            defaultValue: .integer(0), defaultText: "",
            help: "At most N new connections (datagrams on datagram listeners) per second per listener, with a burst of "
                + "N, N from \(OptionRange.text(OptionRange.maxRate)); past it, stop accepting (reading) until the next "
                + "is due: clients wait in the backlog. 0 for unlimited.",
            field: .listener { $0.maxRate = $1.integer }),
        Option(
            name: "max-rate-per-source", kind: .integer(OptionRange.maxRatePerSource), scope: .listener,
            reload: .applies, defaultValue: .integer(0), defaultText: "",
            help: "At most N new connections (datagrams) per second per listener from one source (an address prefix, "
                + "see --source-prefix-v4 and --source-prefix-v6) or one uid, with a burst of N, N from "
                + "\(OptionRange.text(OptionRange.maxRatePerSource)); a connection past it waits unserved for its turn "
                + "(up to 1 s, 8 per source), else is closed unserved; a datagram past it is dropped. 0 for "
                + "unlimited.",
            field: .listener { $0.maxRatePerSource = $1.integer }),
        Option(
            name: "idle-timeout", kind: .seconds, scope: .listener, reload: .applies, defaultValue: .duration(.seconds(300)),
            defaultText: "",
            help: "Close a stream connection idle this long, \(OptionRange.secondsText) seconds, decimals allowed; 0 "
                + "for no idle timeout.",
            field: .listener { $0.idleTimeout = $1.duration }),
        Option(
            name: "max-line", kind: .integer(OptionRange.maxLine), scope: .listener, reload: .applies,
            defaultValue: .integer(65536), defaultText: "",
            help: "Longest line the line services accept, in bytes before the LF, "
                + "\(OptionRange.text(OptionRange.maxLine)); a longer one closes the connection.",
            field: .listener { $0.maxLine = $1.integer }),
        Option(
            name: "request-timeout", kind: .seconds, scope: .listener, reload: .applies,
            defaultValue: .duration(.seconds(60)), defaultText: "",
            help: "Stream services: the longest a request may take to arrive however it trickles (stamp: a line, from "
                + "its first byte to its LF), \(OptionRange.secondsText) seconds, decimals allowed; 0 for no limit.",
            field: .listener { $0.requestTimeout = $1.duration }),
        Option(
            name: "min-rate", kind: .integer(OptionRange.minRate), scope: .listener, reload: .applies,
            defaultValue: .integer(0), defaultText: "",
            help: "Stream services: close a connection older than --request-timeout (60 s when that is 0) whose "
                + "average inbound rate falls below N bytes per second, \(OptionRange.text(OptionRange.minRate)); 0 "
                + "for no minimum.",
            field: .listener { $0.minRate = $1.integer }),
        Option(
            name: "source-prefix-v4", kind: .integer(OptionRange.sourcePrefixV4), scope: .listener, reload: .applies,
            defaultValue: .integer(32), defaultText: "",
            help: "The leading bits of an IPv4 address that make one source for --max-per-source and "
                + "--max-rate-per-source, \(OptionRange.text(OptionRange.sourcePrefixV4)).",
            field: .listener { $0.sourcePrefixV4 = $1.integer }),
        Option(
            name: "source-prefix-v6", kind: .integer(OptionRange.sourcePrefixV6), scope: .listener, reload: .applies,
            defaultValue: .integer(64), defaultText: "",
            help: "The leading bits of an IPv6 address that make one source for --max-per-source and "
                + "--max-rate-per-source, \(OptionRange.text(OptionRange.sourcePrefixV6)).",
            field: .listener { $0.sourcePrefixV6 = $1.integer }),
        Option(
            name: "reply-rate-per-source", kind: .integer(OptionRange.replyRatePerSource), scope: .listener,
            reload: .applies, defaultValue: .integer(100), defaultText: "",
            help: "UDP listeners: at most N replies per second to one source prefix, "
                + "\(OptionRange.text(OptionRange.replyRatePerSource)); 0 for unlimited.",
            field: .listener { $0.replyRatePerSource = $1.integer }),
        Option(
            name: "log-connections", kind: .onOff, scope: .listener, reload: .applies, defaultValue: .flag(true),
            defaultText: "on",
            help: "One info line per finished connection: listener, service, peer (address and port, or uid, gid and "
                + "pid), bytes in and out, duration and how it ended; refused connections too (denied, limit). "
                + "Datagrams are counted, not logged.",
            field: .listener { $0.logConnections = $1.flag }),

        // MARK: The exec children of one listener (keys of [[listener]] only)
        Option(
            name: "user", kind: .account, scope: .execChild, reload: .applies, defaultValue: nil,
            defaultText: "serverd's", help: "Run the listener's exec children as this user (name or uid), with its groups.",
            field: .listener { $0.execIdentity.account = $1.account }),
        Option(
            name: "group", kind: .group, scope: .execChild, reload: .applies, defaultValue: nil,
            defaultText: "the user's, else serverd's",
            help: "Run the listener's exec children with this group (name or gid) as their primary group.",
            field: .listener { $0.execIdentity.group = $1.ids.first }),
        Option(
            name: "chroot", kind: .path, scope: .execChild, reload: .applies, defaultValue: nil, defaultText: "none",
            help: "Change the root directory of the listener's exec children (the program is then looked up in it).",
            field: .listener { $0.execIdentity.root = $1.text }),
        Option(
            name: "chdir", kind: .path, scope: .execChild, reload: .applies, defaultValue: nil,
            defaultText: "serverd's, or / with chroot",
            help: "The working directory of the listener's exec children (inside the chroot, if any).",
            field: .listener { $0.execIdentity.directory = $1.text }),
        Option(
            name: "umask", kind: .socketMode, scope: .execChild, reload: .applies, defaultValue: nil,
            defaultText: "serverd's", help: "The file mode creation mask of the listener's exec children, in octal.",
            field: .listener { $0.execIdentity.umask = $1.mode & 0o777 }),
        Option(
            name: "env", kind: .environment, scope: .execChild, reload: .applies, defaultValue: nil,
            defaultText: "serverd's", help: "Environment changes for the listener's exec children: NAME=value sets "
                + "a variable, -NAME removes it, in order.",
            field: .listener { $0.execIdentity.environment = $1.words }),
        Option(
            name: "rlimit-nofile", kind: .integer(OptionRange.rlimitNofile), scope: .execChild, reload: .applies,
            defaultValue: nil, defaultText: "serverd's",
            help: "Most open descriptors of each exec child (RLIMIT_NOFILE, soft and hard), "
                + "\(OptionRange.text(OptionRange.rlimitNofile)).",
            field: .listener { $0.execIdentity.limits.append(.init(resource: cshims_rlimit_nofile, value: UInt64($1.integer))) }),
        Option(
            name: "rlimit-as", kind: .integer(OptionRange.rlimitAs), scope: .execChild, reload: .applies,
            defaultValue: nil, defaultText: "serverd's",
            help: "Most address space of each exec child in bytes (RLIMIT_AS), "
                + "\(OptionRange.text(OptionRange.rlimitAs)).",
            field: .listener { $0.execIdentity.limits.append(.init(resource: cshims_rlimit_as, value: UInt64($1.integer))) }),
        Option(
            name: "rlimit-cpu", kind: .integer(OptionRange.rlimitCpu), scope: .execChild, reload: .applies,
            defaultValue: nil, defaultText: "serverd's",
            help: "Most CPU seconds of each exec child (RLIMIT_CPU), \(OptionRange.text(OptionRange.rlimitCpu)).",
            field: .listener { $0.execIdentity.limits.append(.init(resource: cshims_rlimit_cpu, value: UInt64($1.integer))) }),
        Option(
            name: "rlimit-nproc", kind: .integer(OptionRange.rlimitNproc), scope: .execChild, reload: .applies,
            defaultValue: nil, defaultText: "serverd's",
            help: "Most processes of the exec children's user (RLIMIT_NPROC), "
                + "\(OptionRange.text(OptionRange.rlimitNproc)).",
            field: .listener { $0.execIdentity.limits.append(.init(resource: cshims_rlimit_nproc, value: UInt64($1.integer))) }),
    ]

    /// The option named `name` (`max-connections`, without dashes): in a `[[listener]]` table its own key first
    /// (`user` is then the exec children's), elsewhere never one of those.
    static func named(_ name: String, inListener: Bool = false) -> Option? {
        if inListener, let own = all.first(where: { $0.name == name && $0.scope == .execChild }) { return own }
        return all.first { $0.name == name && $0.scope != .execChild }
    }
}
