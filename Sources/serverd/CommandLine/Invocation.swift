/// What serverd's command line asks for, `serverd [OPTIONS] [-- PROGRAM ARGS…]`: the options it gives (with
/// `-- PROGRAM ARGS` as `exec`), the listeners of `--listen`, the configuration file and whether only to check.
struct Invocation: Equatable, Sendable {
    /// The daemon-wide and per-listener options given, paths made absolute.
    var options = OptionLayer()
    /// The `--listen SERVICE@ADDRESS` texts, in order.
    var listen: [String] = []
    /// `--config FILE`, absolute; `nil` without one.
    var configFile: String?
    /// `--check-config`.
    var checkOnly = false
    /// The working directory at start, which relative paths and Unix socket paths are taken from even after
    /// `--daemon` moved to `/`.
    var workingDirectory: String
}

/// What to do with a command line: run serverd, or print a text (`--help`, `--version`) and exit 0.
enum CommandLineRequest: Equatable, Sendable {
    case run(Invocation)
    case print(String)
}
