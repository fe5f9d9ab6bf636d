/// How a connection ended, as its connection line says it (`end=…`, the journal's `SERVERD_END=`).
enum ConnectionEnd: String, Sendable {
    /// The client closed its side (end of input), and the service finished.
    case clientClose = "client-close"
    /// The service finished on its own (daytime: after its one line).
    case done
    /// The client reset the connection or went away while serverd wrote.
    case reset
    /// Idle for `idle-timeout`.
    case idle
    /// A request not complete within `request-timeout`.
    case deadline
    /// A line longer than `max-line`.
    case maxLine = "max-line"
    /// Below `min-rate`.
    case minRate = "min-rate"
    /// Refused by the access rules (`allow`, `deny`, `allow-uid`, `allow-gid`).
    case denied
    /// Refused by a limit (`max-per-source`).
    case limit
    /// Refused by a rate (`max-rate-per-source`) after waiting for its turn in vain.
    case rate
    /// Cut short by a stop: the drain ran out of time or a second stop signal came.
    case drain
    /// Ended by an error of serverd's (logged on a line of its own), or an exec program that could not start.
    case error
    /// An exec program exited; the line carries its `exit_status`.
    case exit
    /// An exec program was killed by a signal; the line carries the `signal`.
    case signal
}
