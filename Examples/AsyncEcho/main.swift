import FamilyServer
import FamilyServerLifecycle
import Logging
import ServiceLifecycle

let server = try AsyncStreamServer(address: SocketAddress(parsing: CommandLine.arguments[1]))
let services = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm], logger: Logger(label: "echo"))
try await withThrowingDiscardingTaskGroup { tasks in
    tasks.addTask { try await services.run() }
    for try await connection in server.connections {
        tasks.addTask { while let bytes = try? await connection.read() { try? await connection.write(bytes) } }
    }
}
