import CShims
import FamilyServer
import Glibc
import Logging

/// Runs the listener's program once per connection (UCSPI style): the connection on its stdin and
/// stdout, its stderr line by line into the log, the UCSPI variables in its environment, no other
/// descriptor open. The handler waits for the child, logs how it ended, then closes the connection.
final class ExecHandler: StreamRequestHandler {
    override func handle() throws {
        let program = context.settings.exec
        let label = context.configuration.text
        var errorPipe: [Int32] = [-1, -1]
        guard pipe(&errorPipe) == 0 else { throw SocketError("pipe", errno: errno) }
        _ = fcntl(errorPipe[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(errorPipe[1], F_SETFD, FD_CLOEXEC)
        let environment = ExecEnvironment.variables(for: connection, client: clientAddress, listener: server.serverAddress)
        let pid = withCStrings(program) { argv in
            withCStrings(environment) { envp in
                cshims_spawn(argv[0], argv, envp, connection.fileDescriptor, errorPipe[1])
            }
        }
        let spawnErrno = errno
        close(errorPipe[1])
        guard pid > 0 else {
            close(errorPipe[0])
            context.logger.error("\(label): cannot run \(program[0]) for \(clientAddress): \(String(cString: strerror(spawnErrno))) (errno \(spawnErrno))")
            return
        }
        context.inFlight.started(child: pid)
        context.logger.debug("\(label): started \(program[0]) as pid \(pid) for \(clientAddress)")
        relayStandardError(errorPipe[0], pid: pid, label: label)
        close(errorPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        context.inFlight.reaped(child: pid)
        let signal = status & 0x7f
        if signal != 0 {
            context.logger.warning("\(label): \(program[0]) (pid \(pid)) for \(clientAddress) killed by signal \(signal)")
        } else {
            let code = (status >> 8) & 0xff
            let message: Logger.Message = "\(label): \(program[0]) (pid \(pid)) for \(clientAddress) exited with status \(code)"
            if code == 0 { context.logger.info(message) } else { context.logger.warning(message) }
        }
    }

    /// Logs each line the child writes to stderr until it closes it, cut by ``StandardErrorRelay``.
    private func relayStandardError(_ fd: Int32, pid: pid_t, label: String) {
        var relay = StandardErrorRelay()
        let cut = relay.maximumLineLength
        let emit = { (line: StandardErrorRelay.Line) in
            let note = line.isCut ? " [cut at \(cut) bytes, continued]" : ""
            self.context.logger.warning("\(label): pid \(pid): \(line.text)\(note)")
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            chunk.withUnsafeBytes { relay.append(UnsafeRawBufferPointer(rebasing: $0[0..<count]), emit: emit) }
        }
        relay.finish(emit: emit)
    }
}


/// Calls `body` with `strings` as a NULL-terminated C array.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}
