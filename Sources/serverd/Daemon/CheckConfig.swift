import FamilyServer
import Glibc

/// `--check-config`: validates every listener's address and the accounts of `--user` and
/// `--group` without binding anything, then prints one line per listener that would start. What
/// would make the daemon refuse to start makes it fail the same way, printing no listener.
enum CheckConfig {
    static func validate(_ configuration: DaemonConfiguration) throws(DaemonError) {
        for listener in configuration.listeners {
            let address: ListenAddress
            do {
                address = try ListenAddress(parsing: listener.address)
            } catch {
                let status: ExitStatus = listener.origin == "--listen" ? .usage : .configuration
                throw DaemonError(status, "\(listener.origin) '\(listener.text)': \(error)")
            }
            if case .bind(let socketAddress) = address, listener.service == .exec, socketAddress.transport == .datagram {
                throw DaemonError(.configuration, "\(listener.origin) '\(listener.text)': the exec service needs a stream socket")
            }
        }
        if let user = configuration.user, getpwnam(user) == nil {
            throw DaemonError(.configuration, "--user \(user): no such user")
        }
        if let group = configuration.group, getgrnam(group) == nil {
            throw DaemonError(.configuration, "--group \(group): no such group")
        }
        for listener in configuration.listeners {
            let settings = listener.settings
            var details = ["model \(configuration.model.rawValue)", "max-connections \(settings.maxConnections)"]
            if let perSource = settings.maxPerSource { details.append("max-per-source \(perSource)") }
            details.append("idle-timeout \(settings.idleTimeout)")
            details.append("request-timeout \(settings.requestTimeout)")
            if settings.minRate > 0 { details.append("min-rate \(settings.minRate)") }
            details.append("source-prefix-v4 \(settings.sourcePrefixV4), source-prefix-v6 \(settings.sourcePrefixV6)")
            details.append("reply-rate-per-source \(settings.replyRatePerSource)")
            if listener.service == .exec { details.append("exec \(settings.exec.joined(separator: " "))") }
            print("\(listener.text) (\(listener.origin); \(details.joined(separator: ", ")))")
        }
    }
}
