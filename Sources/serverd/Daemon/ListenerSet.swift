import FamilyServer
import Logging

/// The listeners serving now, by declared identity, and the ones a reload removed that still drain their
/// connections. Changed only by ``apply(_:opener:pollInterval:)``, all or nothing.
final class ListenerSet {
    /// The serving listeners, in declaration order; a bare `systemd` may have several sockets.
    private(set) var serving: [(identity: ListenerIdentity, listeners: [Listener])] = []
    /// Listeners a reload removed: no longer accepting, still draining.
    private(set) var retired: [Listener] = []
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Every serving listener.
    var all: [Listener] { serving.flatMap(\.listeners) }

    /// Every listener with connections that may still be open: serving and retired.
    var everyListener: [Listener] { all + retired }

    /// The identities serving now.
    var identities: [ListenerIdentity] { serving.map(\.identity) }

    /// Applies a plan: opens and starts every added listener first; if one fails, closes what was opened for the plan
    /// (removing the socket files it created) and throws, leaving the running set as it was. Only then updates the
    /// kept listeners and retires the removed ones, which cannot fail.
    /// - Returns: The listeners started, for the `listening on` lines.
    @discardableResult
    func apply(
        _ plan: ReloadPlan, desired: [ListenerDeclaration], opener: ListenerOpener, pollInterval: Double
    ) throws(DaemonError) -> [Listener] {
        let reserved = Set(desired.compactMap { declaration -> String? in
            if case .systemd(let name?) = declaration.identity.address { return name }
            return nil
        })
        var opened: [(identity: ListenerIdentity, listeners: [Listener])] = []
        do throws(DaemonError) {
            for declaration in plan.add {
                opened.append((declaration.identity, try opener.open(declaration, reserved: reserved)))
            }
            for listener in opened.flatMap(\.listeners) {
                do {
                    try listener.start(pollInterval: pollInterval)
                } catch {
                    throw DaemonError(.osError, "\(listener.context.label): cannot start its serve loop: \(error)")
                }
            }
        } catch {
            for listener in opened.flatMap(\.listeners) { listener.stopListening() }
            throw error
        }
        for declaration in plan.update {
            for listener in serving.first(where: { $0.identity == declaration.identity })?.listeners ?? [] {
                listener.update(declaration, logger: logger)
            }
        }
        for identity in plan.remove {
            for listener in serving.first(where: { $0.identity == identity })?.listeners ?? [] {
                logger.notice("closing \(listener.listeningText)")
                listener.stopListening()
                retired.append(listener)
            }
        }
        let running = serving + opened
        serving = desired.compactMap { declaration in running.first { $0.identity == declaration.identity } }
        retired.removeAll { $0.isIdle }
        return opened.flatMap(\.listeners)
    }

    /// Stops every listener taking new requests (their connections go on).
    func stopListening() {
        // Every loop is asked first: they end side by side rather than one after another.
        for listener in all { listener.stopTakingRequests() }
        for listener in all { listener.closeOnceLoopEnded() }
    }

    /// After a binary upgrade: stops every listener taking new requests, leaving their socket files to the new
    /// process.
    func handOver() {
        for listener in all { listener.handOver() }
    }
}
