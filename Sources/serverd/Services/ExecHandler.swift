import FamilyServer
import Glibc
import Logging

/// Runs the listener's program once per connection (UCSPI style): the connection on its stdin and
/// stdout, its stderr line by line into the log, the UCSPI variables in its environment, no other
/// descriptor open, in a process group of its own. The handler waits for the child, logs how it
/// ended, then closes the connection. The connection ends when the child exits, even if a process
/// the child left in the background still holds its stderr (or the connection).
final class ExecHandler: StreamRequestHandler {
    override func handle() throws {
        let program = context.policy.exec
        let label = context.label
        let environment = ExecEnvironment.variables(for: connection, client: clientAddress, listener: server.serverAddress)
        let child: ExecChild
        do {
            child = try ExecChild.start(
                program, environment: environment, connection: connection.fileDescriptor, groups: context.inFlight.groups,
                connectionsInFlight: { context.inFlight.connectionsInProcess }
            ) { shortage in
                context.logger.warning("\(label): out of descriptors for \(clientAddress) (\(shortage)): waiting up to \(ExecChild.descriptorPatience) s")
            }
        } catch .descriptors(let error) {
            throw error
        } catch .program(let code) {
            context.logger.error("\(label): cannot run \(program[0]) for \(clientAddress): \(String(cString: strerror(code))) (errno \(code))")
            return
        }
        let pid = child.pid
        context.logger.debug("\(label): started \(program[0]) as pid \(pid) for \(clientAddress)")
        var relay = StandardErrorRelay()
        let cut = relay.maximumLineLength
        child.relayStandardError(&relay) { line in
            let note = line.isCut ? " [cut at \(cut) bytes, continued]" : ""
            context.logger.warning("\(label): pid \(pid): \(line.text)\(note)")
        }
        let status = child.wait()
        let signal = status & 0x7f
        if signal != 0 {
            context.logger.warning("\(label): \(program[0]) (pid \(pid)) for \(clientAddress) killed by signal \(signal)")
        } else {
            let code = (status >> 8) & 0xff
            let message: Logger.Message = "\(label): \(program[0]) (pid \(pid)) for \(clientAddress) exited with status \(code)"
            if code == 0 { context.logger.info(message) } else { context.logger.warning(message) }
        }
    }
}
