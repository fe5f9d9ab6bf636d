/// A command-line value that a transform refused, with the message that names the option:
/// `--max-connections: 'abc' is not a valid integer`, `--listen 'x': expected SERVICE@ADDRESS, found no '@'`.
///
/// ArgumentParser wraps it in its own error; ``ServerdCommand/parseCommandLine(_:)`` digs it out again so that the
/// final `serverd: …` line carries this message rather than ArgumentParser's paraphrase.
struct CommandLineValueError: Error, Sendable, CustomStringConvertible {
    /// The complete message, without the `serverd: ` prefix.
    var message: String

    /// The message.
    var description: String { message }

    /// An ArgumentParser transform for `option` that runs `parse` and names the option in any error.
    /// - Parameters:
    ///   - option: The option as the user types it, e.g. `--max-line`.
    ///   - parse: The conversion and check of the value, shared with the configuration file (see ``OptionValue``).
    static func transform<Value>(
        _ option: String, _ parse: @escaping @Sendable (String) throws(OptionValueError) -> Value
    ) -> @Sendable (String) throws -> Value {
        return { text in
            do throws(OptionValueError) {
                return try parse(text)
            } catch {
                throw CommandLineValueError(message: "\(option): \(error.reason)")
            }
        }
    }

    /// The ArgumentParser transform for `--listen`, whose errors quote the spec: `--listen 'x': …`.
    static let listenTransform: @Sendable (String) throws -> ListenSpec = { text in
        do throws(OptionValueError) {
            return try ListenSpec(parsing: text)
        } catch {
            throw CommandLineValueError(message: "--listen '\(text)': \(error.reason)")
        }
    }
}
