import FamilyServer
import Glibc
import Synchronization

/// The listener's gate: source address rules (inet), peer credential rules (Unix), the
/// per-source connection limit and the per-source rate, which count per ``SourceKey`` (an address
/// prefix or a uid). Every refusal is logged with the peer's address or credentials.
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

    /// Paces an admitted connection by `max-rate-per-source`: how long it waits for its source's
    /// next token, or `nil` when it is refused (logged; the caller closes it and ends its count).
    ///
    /// A connection whose token is not there yet is held for it when `canHold` (the caller has
    /// room), at most ``longestHold`` seconds and ``mostHeldPerSource`` connections of one source;
    /// past that it is refused. A source that the full table of buckets cannot track is not paced
    /// (fails open: `max-rate` and `max-connections` still bound the listener).
    func pace(connection: Socket, from client: SocketAddress, policy settings: ListenerPolicy, canHold: Bool) -> Double? {
        let rate = settings.maxRatePerSource
        guard let buckets = buckets(rate: rate) else { return 0 }
        let key: SourceKey
        if let source = SourceKey(peer: client, settings: settings) {
            key = source
        } else {
            do {
                key = .uid(try connection.peerCredentials().uid)
            } catch {
                context.logger.warning("\(label): refused a connection: \(error)")
                return nil
            }
        }
        let longest = canHold ? min(Self.longestHold, Double(Self.mostHeldPerSource) / Double(rate)) : 0
        guard let wait = buckets.reserve(key, now: MonotonicClock.seconds(), maxWait: longest) else {
            refuseOverRate(key, client, rate: rate)
            return nil
        }
        if wait.isInfinite { return 0 }
        if wait > 0 {
            context.logger.debug("\(label): holding \(describe(key, client)) for \(wait) s: over \(rate) connections per second")
        }
        return wait
    }

    /// Logs a connection refused by `max-rate-per-source`, like every other refusal: one notice line.
    private func refuseOverRate(_ key: SourceKey, _ client: SocketAddress, rate: Int) {
        context.logger.notice("\(label): refused \(describe(key, client)): more than \(rate) connections per second from it")
    }

    /// Whether a datagram from `client` is within its source's `max-rate-per-source`; one past it is
    /// dropped and logged at most every 10 s (a datagram's source may be forged at no cost, so the
    /// check is O(1) and fails open when the table of buckets is full).
    func admitsRate(datagram: Datagram, from client: SocketAddress, policy settings: ListenerPolicy) -> Bool {
        let rate = settings.maxRatePerSource
        guard let buckets = buckets(rate: rate) else { return true }
        guard let key = SourceKey(peer: client, settings: settings) ?? datagram.credentials.map({ .uid($0.uid) }) else {
            return true
        }
        guard buckets.reserve(key, now: MonotonicClock.seconds(), maxWait: 0) == nil else { return true }
        datagramsOverRate.record(
            context.logger, "\(label): dropped a datagram from \(describe(key, client)): more than \(rate) datagrams per second from it")
        return false
    }

    /// The buckets of `rate` per source, made anew when the rate changed; `nil` for 0 (unlimited).
    private func buckets(rate: Int) -> SourceBuckets? {
        sourceRates.withLock { current in
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
