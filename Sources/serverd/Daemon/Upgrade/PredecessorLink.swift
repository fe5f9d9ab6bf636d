import FamilyServer
import Glibc

/// The new serverd's side of a binary upgrade (``HandOverEnvironment``): once every listener serves it reports
/// `READY PID` to the old process and waits for `MAIN`, which the old one sends after the pidfile names the new
/// process and systemd was told `MAINPID=` — so that `READY=1` and every later notification come from the main
/// process (`NotifyAccess=main` ignores the others). Then the old process's stderr becomes this one's.
struct PredecessorLink {
    /// How long to wait for `MAIN`: longer than the old process waits for `READY`, which kills this one when it gives
    /// up (``BinaryUpgrade/readinessDeadline``).
    static let patience = BinaryUpgrade.readinessDeadline + 10

    private let channel: Int32
    private let standardError: Int32?

    /// The link of a process started by an upgrade, `nil` for any other start.
    init?(_ environment: HandOverEnvironment) {
        guard let channel = environment.channel else { return nil }
        self.channel = channel
        standardError = environment.standardError
    }

    /// Reports ready and waits until the old process hands over.
    /// - Throws: ``DaemonError`` (exit 71) when the old process closed the channel without `MAIN` or the wait timed
    ///   out: it gave up on this process and keeps serving.
    func handOver() throws(DaemonError) {
        let report = Array("READY \(getpid())\n".utf8)
        let written = report.withUnsafeBytes { write(channel, $0.baseAddress, $0.count) }
        guard written == report.count else { throw failure("write: \(String(cString: strerror(errno)))") }
        let deadline = MonotonicClock.seconds() + Self.patience
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64)
        while !String(decoding: received, as: UTF8.self).hasPrefix("MAIN\n") {
            let left = deadline - MonotonicClock.seconds()
            guard left > 0 else { throw failure("no hand-over within \(ValueSyntax.display(Self.patience)) s") }
            guard (try? Poll.readable([channel], timeout: left))?.first == true else { continue }
            let count = chunk.withUnsafeMutableBytes { read(channel, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw failure("the old process closed the channel without handing over") }
            received += chunk[0..<count]
        }
    }

    /// Closes the channel and takes the old process's stderr as this process's own (until now stderr was the pipe
    /// the old process logged from).
    func finish() {
        close(channel)
        if let standardError {
            dup2(standardError, 2)
            close(standardError)
        }
    }

    private func failure(_ reason: String) -> DaemonError {
        DaemonError(.osError, "binary upgrade: \(HandOverEnvironment.channelVariable)=\(channel): \(reason)")
    }
}
