import ArgumentParser

extension ServerdCommand {
    /// Parses serverd's arguments without ever letting ArgumentParser print or exit by itself.
    ///
    /// - Parameter arguments: The arguments after the program name (`CommandLine.arguments.dropFirst()`).
    /// - Returns: ``CommandLineRequest/run(_:)`` with the options, or ``CommandLineRequest/print(_:)`` with the help,
    ///   the version or a completion script, which the caller prints before it exits 0.
    /// - Throws: ``DaemonError`` with status `.usage` whose message names the option at fault:
    ///   `unknown option '--frobnicate'`, `--max-connections: 'abc' is not a valid integer`,
    ///   `--listen 'x': expected SERVICE@ADDRESS, found no '@'`, `missing value for '--model <MODEL>'`.
    static func parseCommandLine(_ arguments: [String]) throws(DaemonError) -> CommandLineRequest {
        do {
            return .run(try parse(arguments))
        } catch {
            if exitCode(for: error) == .success {
                return .print(fullMessage(for: error))
            }
            throw DaemonError(.usage, usageMessage(for: error))
        }
    }

    /// The one-line message for a refused command line: a transform's own message when ArgumentParser's error
    /// carries one, else ArgumentParser's message, first line, starting in lower case.
    private static func usageMessage(for error: any Error) -> String {
        if let valueError = valueError(in: error, depth: 0) {
            return valueError.message
        }
        let text = message(for: error)
        let firstLine = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        guard let initial = firstLine.first, firstLine.dropFirst().first?.isLowercase == true else {
            return firstLine.isEmpty ? "invalid command line" : firstLine
        }
        return initial.lowercased() + firstLine.dropFirst()
    }

    /// The ``CommandLineValueError`` inside ArgumentParser's error, if any.
    ///
    /// ArgumentParser keeps the error a transform threw as the `originalError` of its internal
    /// `ParserError.unableToParseValue` and offers no public accessor, so the error is searched with `Mirror`. Should
    /// a later ArgumentParser store it elsewhere, ``usageMessage(for:)`` falls back to ArgumentParser's own message,
    /// which names the option too.
    private static func valueError(in value: Any, depth: Int) -> CommandLineValueError? {
        if let found = value as? CommandLineValueError {
            return found
        }
        guard depth < 8 else { return nil }
        for child in Mirror(reflecting: value).children {
            if let found = valueError(in: child.value, depth: depth + 1) {
                return found
            }
        }
        return nil
    }
}
