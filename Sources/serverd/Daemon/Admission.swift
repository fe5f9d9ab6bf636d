import FamilyServer
import Glibc
import Synchronization

/// The listener's gate: source address rules (inet), peer credential rules (Unix) and the
/// per-source connection limit, which counts per ``SourceKey`` (an address prefix or a uid). Every
/// refusal is logged with the peer's address or credentials.
final class Admission: Sendable {
    private let context: ListenerContext
    private let perSource = ConditionLock<[SourceKey: Int]>([:])
    /// Which source each admitted connection counts against, until it ends.
    private let counted = ConditionLock<[ObjectIdentifier: SourceKey]>([:])
    /// Datagrams refused by the rules: any sender can cause them at will, so they are logged at
    /// most every 10 s (a refused connection costs its peer a handshake, a datagram nothing).
    private let droppedDatagrams = ThrottledWarning()

    init(context: ListenerContext) {
        self.context = context
    }

    private var label: String { context.label }

    /// Decides whether an accepted connection is served; counts it against its source if so.
    func admits(connection: Socket, from client: SocketAddress, policy settings: ListenerPolicy) -> Bool {
        let key: SourceKey
        if let ip = client.ip, let source = SourceKey(peer: client, settings: settings) {
            guard settings.admits(address: (ip.mappedIPv4 ?? ip).bytes) else {
                context.logger.notice("\(label): refused \(client): source address not allowed")
                return false
            }
            key = source
        } else {
            let credentials: PeerCredentials
            do {
                credentials = try connection.peerCredentials()
            } catch {
                context.logger.warning("\(label): refused a connection: \(error)")
                return false
            }
            guard settings.admits(uid: credentials.uid, gid: credentials.gid) else {
                context.logger.notice("\(label): refused peer \(credentials): uid and gid not allowed")
                return false
            }
            key = .uid(credentials.uid)
        }
        guard let limit = settings.maxPerSource else { return true }
        let admitted = perSource.withLock { counts -> Bool in
            let current = counts[key, default: 0]
            guard current < limit else { return false }
            counts[key] = current + 1
            return true
        }
        guard admitted else {
            context.logger.notice("\(label): refused \(describe(key, client)): \(limit) connections from it already")
            return false
        }
        counted.withLock { $0[ObjectIdentifier(connection)] = key }
        return true
    }

    /// Decides whether a datagram is served (address rules, or the credentials it carries).
    func admits(datagram: Datagram, from client: SocketAddress, policy settings: ListenerPolicy) -> Bool {
        if let ip = client.ip {
            guard settings.admits(address: (ip.mappedIPv4 ?? ip).bytes) else {
                droppedDatagrams.record(context.logger, "\(label): dropped a datagram from \(client): source address not allowed")
                return false
            }
            return true
        }
        guard settings.allowUIDs != nil || settings.allowGIDs != nil else { return true }
        guard let credentials = datagram.credentials, settings.admits(uid: credentials.uid, gid: credentials.gid) else {
            droppedDatagrams.record(
                context.logger,
                "\(label): dropped a datagram from \(datagram.credentials.map { "peer \($0)" } ?? "an unknown peer"): uid and gid not allowed")
            return false
        }
        return true
    }

    /// Releases the per-source count of a connection that ended.
    func ended(connection: Socket) {
        guard let key = counted.withLock({ $0.removeValue(forKey: ObjectIdentifier(connection)) }) else { return }
        perSource.withLock { counts in
            let left = counts[key, default: 1] - 1
            counts[key] = left > 0 ? left : nil
        }
    }

    private func describe(_ key: SourceKey, _ client: SocketAddress) -> String {
        switch key {
        case .prefix(let block):
            let single = block.prefixLength == block.network.count * 8
            return single ? client.description : "\(client) (source \(block))"
        case .uid: return key.description
        }
    }
}
