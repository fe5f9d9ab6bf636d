/// The processing model a listener serves connections with (`--model`, `model = "…"`).
enum ModelName: String, CaseIterable, Equatable, Sendable {
    /// One connection at a time, on the serving thread.
    case serial
    /// One thread per connection.
    case threading
    /// One child process per connection.
    case forking

    /// The model used when neither the command line nor the configuration file names one.
    static let defaultModel = ModelName.threading
}
