import FamilyServer
import Glibc
import Logging
import Synchronization

/// The listener's gate: source address rules (inet), peer credential rules (Unix) and the
/// per-source connection limit, which counts per ``SourceKey`` (an address prefix or a uid). Every
/// refusal of a connection goes through ``refuse(_:from:on:peer:policy:because:subject:level:)``, which logs
/// it with the peer's address or credentials, counts it (``ListenerCounters/refused(_:)``) and writes its
/// connection line.
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
    /// - Parameters:
    ///   - connection: The accepted connection.
    ///   - client: Its peer's address.
    ///   - address: The listener's address, for the connection line of a refusal.
    ///   - settings: The listener's current policy.
    func admits(
        connection: Socket, from client: SocketAddress, on address: SocketAddress, policy settings: ListenerPolicy
    ) -> Bool {
        let key: SourceKey
        if let ip = client.ip, let source = SourceKey(peer: client, settings: settings) {
            guard settings.admits(address: (ip.mappedIPv4 ?? ip).bytes) else {
                return refuse(
                    .denied, from: client, on: address, peer: .address(client), policy: settings,
                    because: "source address not allowed")
            }
            key = source
        } else {
            let credentials: PeerCredentials
            do {
                credentials = try connection.peerCredentials()
            } catch {
                return refuse(
                    .denied, from: client, on: address, peer: .credentials(nil), policy: settings,
                    because: "\(error)", subject: "a connection", level: .warning)
            }
            guard settings.admits(uid: credentials.uid, gid: credentials.gid) else {
                return refuse(
                    .denied, from: client, on: address, peer: .credentials(credentials), policy: settings,
                    because: "uid and gid not allowed", subject: "peer \(credentials)")
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
            return refuse(
                .limit, from: client, on: address, peer: .of(connection, client: client), policy: settings,
                because: "\(limit) connections from it already", subject: describe(key, client))
        }
        counted.withLock { $0[ObjectIdentifier(connection)] = key }
        return true
    }

    /// Decides whether a datagram is served (address rules, or the credentials it carries).
    func admits(datagram: Datagram, from client: SocketAddress, policy settings: ListenerPolicy) -> Bool {
        if let ip = client.ip {
            guard settings.admits(address: (ip.mappedIPv4 ?? ip).bytes) else {
                context.counters.refused(.denied)
                droppedDatagrams.record(context.logger, "\(label): dropped a datagram from \(client): source address not allowed")
                return false
            }
            return true
        }
        guard settings.allowUIDs != nil || settings.allowGIDs != nil else { return true }
        guard let credentials = datagram.credentials, settings.admits(uid: credentials.uid, gid: credentials.gid) else {
            context.counters.refused(.denied)
            droppedDatagrams.record(
                context.logger,
                "\(label): dropped a datagram from \(datagram.credentials.map { "peer \($0)" } ?? "an unknown peer"): uid and gid not allowed")
            return false
        }
        return true
    }

    /// Refuses a connection: logs why (`LABEL: refused SUBJECT: REASON`, at notice unless `level` says otherwise),
    /// counts the refusal, and writes its connection line (ended `denied` or `limit`) when the listener logs
    /// connections. The one place a connection refusal is counted: a new kind of refusal is a new
    /// ``ListenerCounters/Refusal`` and a call here.
    /// - Returns: `false`, what ``admits(connection:from:on:policy:)`` returns for a refusal.
    private func refuse(
        _ reason: ListenerCounters.Refusal, from client: SocketAddress, on address: SocketAddress,
        peer: ConnectionRecord.Peer, policy: ListenerPolicy, because text: String, subject: String? = nil,
        level: Logger.Level = .notice
    ) -> Bool {
        context.logger.log(level: level, "\(label): refused \(subject ?? client.description): \(text)")
        context.counters.refused(reason)
        if policy.logConnections {
            let end: ConnectionEnd = reason == .denied ? .denied : .limit
            ConnectionRecord(
                listener: "\(policy.service.rawValue)@\(address)", service: policy.service, peer: peer, end: end,
                duration: 0, bytes: (0, 0)
            ).log(to: context.logger)
        }
        return false
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
