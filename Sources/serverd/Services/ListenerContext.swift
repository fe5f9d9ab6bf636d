import FamilyServer
import Logging

/// What a service handler needs to know about the listener that accepted its request.
final class ListenerContext: Sendable {
    /// The listener as configured (`SERVICE@ADDRESS` and its settings).
    let configuration: ListenerConfiguration
    /// Where the service logs.
    let logger: Logger
    /// Connections and exec children in flight, for a drain that has to cut them short.
    let inFlight = InFlightRegistry()

    init(configuration: ListenerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The per-listener settings.
    var settings: ListenerSettings { configuration.settings }
}

/// A server that serves one configured listener.
protocol ServesListener: BaseServer {
    /// The listener it serves.
    var context: ListenerContext { get }
}

extension BaseRequestHandler {
    /// The listener context of the daemon's server that created this handler.
    var context: ListenerContext { (server as! any ServesListener).context }
}
