/// A non-blocking handler of one stream connection under the ``EventModel``: bytes in, bytes out, close.
///
/// Where a ``StreamRequestHandler`` blocks in reads and writes on a thread of its own, an event handler is called by
/// its connection's reactor thread whenever something happened, and must return at once: it never blocks, sleeps or
/// waits. It answers by calling `EventConnection.write(_:)` (the bytes are sent as the client takes them; what it
/// does not take yet is buffered, and while more than ``EventConnection/outputLimit`` is buffered the connection is
/// not read, so a client that sends without reading stalls only itself) and ``EventConnection/close()``. Deadlines
/// are set on the connection (``EventConnection/idleTimeout``, ``EventConnection/deadline``), not slept on.
///
/// Every call for one connection comes from the same thread, one at a time; the handler needs no lock for its own
/// state. It is created by the model's factory when the connection is taken, and released after
/// ``connectionClosed(_:reason:)``.
///
/// An echo service:
///
///     final class Echo: StreamEventHandler {
///         func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection) {
///             connection.write(bytes)
///         }
///     }
///     let reactors = try EventReactors(count: 2)
///     let model = EventModel(reactors: reactors) { _ in Echo() }
///     let server = try TCPServer(address: address, handler: BaseRequestHandler.self, model: model)
///     server.serveForever()
public protocol StreamEventHandler: AnyObject {
    /// The connection was taken: set its deadlines, write a greeting. Does nothing by default.
    func opened(_ connection: EventConnection)

    /// Bytes arrived (at most 64 KiB at a time, valid only during the call: copy what you keep).
    func received(_ bytes: UnsafeRawBufferPointer, on connection: EventConnection)

    /// The client closed its sending side (end of stream). By default the connection is closed once the buffered
    /// output is sent.
    func inputEnded(on connection: EventConnection)

    /// ``EventConnection/deadline`` was reached (and is cleared). Does nothing by default.
    func deadlineReached(on connection: EventConnection)

    /// The connection has ended: nothing more is read or written (a write is dropped), and its socket, still open
    /// during the call (for its peer's credentials, say), is closed right after. `reason` says why. Does nothing by
    /// default.
    func connectionClosed(_ connection: EventConnection, reason: EventCloseReason)
}

extension StreamEventHandler {
    public func opened(_ connection: EventConnection) {}
    public func inputEnded(on connection: EventConnection) { connection.close() }
    public func deadlineReached(on connection: EventConnection) {}
    public func connectionClosed(_ connection: EventConnection, reason: EventCloseReason) {}
}

/// Why an event-model connection ended.
public enum EventCloseReason: Sendable, Equatable {
    /// The handler called ``EventConnection/close()`` and the output was sent.
    case closed
    /// Nothing was read or written for ``EventConnection/idleTimeout`` seconds.
    case idle
    /// The client reset the connection or a send or receive failed.
    case failed(SocketError)
    /// The server ended it early (``EventModel/cutShort(server:)``, a drain that ran out of time) or its reactors
    /// stopped.
    case cutShort
}
