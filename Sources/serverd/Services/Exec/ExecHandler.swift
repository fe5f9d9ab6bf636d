import FamilyServer
import Synchronization

/// The exec service for a connection served outside the serve loop (the one connection of `Accept=yes`): starts the
/// program through the listener's ``ExecLauncher``, as the loop does, and services the ``ExecSupervisor`` until the
/// child has been reaped, since this connection is all there is to do.
final class ExecHandler: StreamRequestHandler {
    override func handle() throws {
        guard let server = server as? ServiceStreamServer else { return }
        let ended = Atomic<Bool>(false)
        let started = server.exec.launch(connection, client: clientAddress, listener: server.serverAddress) {
            ended.store(true, ordering: .releasing)
        }
        guard started else { return }
        ExecSupervisor.shared.serviceEvents(until: { ended.load(ordering: .acquiring) })
    }
}
