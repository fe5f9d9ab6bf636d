/// The processing model a listener serves connections with (`--model`, `model = "…"`).
enum ModelName: String, CaseIterable, Equatable, Sendable {
    /// One connection at a time, on the serving thread.
    case serial
    /// One thread per connection.
    case threading
    /// One child process per connection.
    case forking
    /// Non-blocking connections on epoll, many per thread: one reactor thread per `workers`.
    case event
}
