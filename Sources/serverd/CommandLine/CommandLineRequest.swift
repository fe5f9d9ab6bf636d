/// What serverd's command line asks for, as ``ServerdCommand/parseCommandLine(_:)`` reads it.
enum CommandLineRequest {
    /// Serve, or with `--check-config` check, with these options.
    case run(ServerdCommand)
    /// Print this text on stdout and exit 0: the answer to `--help`, `--version` or
    /// `--generate-completion-script SHELL`. The text has no final line feed.
    case print(String)
}
