import FamilyServer

/// `--check-config`: validates every listener's address without binding anything and prints one
/// line per listener that would start.
enum CheckConfig {
    static func validate(_ configuration: DaemonConfiguration) throws(DaemonError) {
        for listener in configuration.listeners {
            do {
                _ = try ListenAddress(parsing: listener.address)
            } catch {
                let status: ExitStatus = listener.origin == "--listen" ? .usage : .configuration
                throw DaemonError(status, "\(listener.origin) '\(listener.text)': \(error)")
            }
            let settings = listener.settings
            var details = ["model \(configuration.model.rawValue)", "max-connections \(settings.maxConnections)"]
            if let perSource = settings.maxPerSource { details.append("max-per-source \(perSource)") }
            details.append("idle-timeout \(settings.idleTimeout)")
            if listener.service == .exec { details.append("exec \(settings.exec.joined(separator: " "))") }
            print("\(listener.text) (\(listener.origin); \(details.joined(separator: ", ")))")
        }
    }
}
