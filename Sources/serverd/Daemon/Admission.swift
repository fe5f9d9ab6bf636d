import FamilyServer
import Glibc
import Logging
import Synchronization

/// The listener's gate: source address rules (inet), peer credential rules (Unix), the
/// per-source connection limit and the per-source rate, which count per ``SourceKey`` (an address
/// prefix or a uid). Every refusal of a connection goes through
/// ``refuse(_:from:on:peer:policy:because:subject:level:)``, which logs it with the peer's address or
/// credentials, counts it (``ListenerCounters/refused(_:)``) and writes its connection line.
final class Admission: Sendable {
    /// The longest a connection past its source's rate is held for its turn, in seconds.
    static let longestHold = 1.0
    /// The most connections of one source held at once: a source cannot take the whole queue of
    /// held connections (``HeldConnections``) from the others.
    static let mostHeldPerSource = 8

    private let context: ListenerContext
    private let perSource = ConditionLock<[SourceKey: Int]>([:])
    /// `max-rate-per-source`: the buckets of the current rate, replaced when a reload changes it; `nil` while unlimited.
    private let sourceRates = ConditionLock<SourceBuckets?>(nil)
    /// Whether ``sourceRates`` holds buckets: set under its lock, read without it so that an unlimited listener's
    /// datagrams skip the lock.
    private let hasSourceRates = Atomic<Bool>(false)
    /// Datagrams dropped by the per-source rate, logged at most every 10 s.
    private let datagramsOverRate = ThrottledWarning()
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
    func admits(datagramFrom client: SocketAddress, credentials: PeerCredentials?, current: ListenerContext.Snapshot) -> Bool {
        // The policy is read in place: a copy of it would retain each of its arrays, per datagram.
        if let ip = client.ip {
            guard current.policy.admits(address: (ip.mappedIPv4 ?? ip).bytes) else {
                context.counters.refused(.denied)
                droppedDatagrams.record(context.logger, "\(label): dropped a datagram from \(client): source address not allowed")
                return false
            }
            return true
        }
        guard current.policy.allowUIDs != nil || current.policy.allowGIDs != nil else { return true }
        guard let credentials, current.policy.admits(uid: credentials.uid, gid: credentials.gid) else {
            context.counters.refused(.denied)
            droppedDatagrams.record(
                context.logger,
                "\(label): dropped a datagram from \(credentials.map { "peer \($0)" } ?? "an unknown peer"): uid and gid not allowed")
            return false
        }
        return true
    }

    /// Refuses a connection: logs why (`LABEL: refused SUBJECT: REASON`, at notice unless `level` says otherwise),
    /// counts the refusal, and writes its connection line (ended `denied`, `limit` or `rate`) when the listener logs
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
        if context.logsConnections(policy) {
            let end: ConnectionEnd
            switch reason {
            case .denied: end = .denied
            case .limit: end = .limit
            case .rate: end = .rate
            }
            ConnectionRecord(
                listener: "\(policy.service.rawValue)@\(address)", service: policy.service, peer: peer, end: end,
                duration: 0, bytes: (0, 0)
            ).log(to: context.logger)
        }
        return false
    }

    /// Paces an admitted connection by `max-rate-per-source`: how long it waits for its source's
    /// next token, or `nil` when it is refused (logged; the caller closes it and ends its count).
    ///
    /// A connection whose token is not there yet is held for it when `canHold` (the caller has
    /// room), at most ``longestHold`` seconds and ``mostHeldPerSource`` connections of one source;
    /// past that it is refused. A source that the full table of buckets cannot track is not paced
    /// (fails open: `max-rate` and `max-connections` still bound the listener).
    /// - Parameter address: The listener's address, for the connection line of a refusal.
    func pace(
        connection: Socket, from client: SocketAddress, on address: SocketAddress, policy settings: ListenerPolicy,
        canHold: Bool
    ) -> Double? {
        let rate = settings.maxRatePerSource
        guard let buckets = buckets(rate: rate) else { return 0 }
        let key: SourceKey
        if let source = SourceKey(peer: client, settings: settings) {
            key = source
        } else {
            do {
                key = .uid(try connection.peerCredentials().uid)
            } catch {
                _ = refuse(
                    .denied, from: client, on: address, peer: .credentials(nil), policy: settings,
                    because: "\(error)", subject: "a connection", level: .warning)
                return nil
            }
        }
        let longest = canHold ? min(Self.longestHold, Double(Self.mostHeldPerSource) / Double(rate)) : 0
        guard let wait = buckets.reserve(key, now: MonotonicClock.seconds(), maxWait: longest) else {
            _ = refuse(
                .rate, from: client, on: address, peer: .of(connection, client: client), policy: settings,
                because: "more than \(rate) connections per second from it", subject: describe(key, client))
            return nil
        }
        if wait.isInfinite { return 0 }
        if wait > 0 {
            context.logger.debug("\(label): holding \(describe(key, client)) for \(wait) s: over \(rate) connections per second")
        }
        return wait
    }

    /// Whether a datagram from `client` is within its source's `max-rate-per-source`; one past it is
    /// dropped and logged at most every 10 s (a datagram's source may be forged at no cost, so the
    /// check is O(1) and fails open when the table of buckets is full).
    func admitsRate(datagramFrom client: SocketAddress, credentials: PeerCredentials?, current: ListenerContext.Snapshot) -> Bool {
        let rate = current.policy.maxRatePerSource
        guard let buckets = buckets(rate: rate) else { return true }
        guard let key = SourceKey(peer: client, settings: current.policy) ?? credentials.map({ .uid($0.uid) }) else {
            return true
        }
        guard buckets.reserve(key, now: MonotonicClock.seconds(), maxWait: 0) == nil else { return true }
        context.counters.refused(.rate)
        datagramsOverRate.record(
            context.logger, "\(label): dropped a datagram from \(describe(key, client)): more than \(rate) datagrams per second from it")
        return false
    }

    /// The buckets of `rate` per source, made anew when the rate changed; `nil` for 0 (unlimited).
    private func buckets(rate: Int) -> SourceBuckets? {
        guard rate > 0 || hasSourceRates.load(ordering: .relaxed) else { return nil }
        return sourceRates.withLock { current in
            defer { hasSourceRates.store(current != nil, ordering: .relaxed) }
            guard rate > 0 else {
                current = nil
                return nil
            }
            if current?.rate != rate { current = SourceBuckets(rate: rate) }
            return current
        }
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
