import FamilyServer
import Glibc
import XCTest

/// What a `BadHandler` does after logging "Handler called".
private enum Failure: String {
    /// Throw an error: the model must pass it to `handleError` (CPython's ValueError).
    case throwError = "throw"
    /// End without an error (serial and threading models) or end the forked child with `_exit`
    /// (forking model): nothing reaches `handleError`. Swift has no BaseException; these are the
    /// ways a handler can leave its worker without the library's error handling, which is what
    /// CPython's SystemExit tests check.
    case exitWithoutError = "exit"
}

/// A TCP server that logs "Error handled" to a file (forked children log too) and serves one
/// request with `handleRequest()` before it is closed, like CPython's `BaseErrorTestServer`.
private final class ErrorTestServer: StreamServer, @unchecked Sendable {
    var log: LogFile!
    var failure = Failure.throwError

    override func handleError(_ request: Request?, clientAddress: SocketAddress?, error: any Error) {
        log.append("Error handled")
    }
}

/// CPython's `BadHandler`.
private final class BadHandler: BaseRequestHandler {
    override func handle() throws {
        let server = self.server as! ErrorTestServer
        server.log.append("Handler called")
        switch server.failure {
        case .throwError:
            throw DeliberateError("Test error")
        case .exitWithoutError:
            if server.processingModel is ForkingModel { _exit(1) }
        }
    }
}

/// The port of CPython's `ErrorHandlerTest`: an error thrown by a handler reaches `handleError`
/// exactly once in every model; a handler that leaves without an error does not.
final class ErrorHandlerTests: FamilyServerTestCase {
    private func check(_ model: TestModel, _ failure: Failure, handled: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let log = LogFile(path: path("log"))
        let server = try ErrorTestServer(
            address: address(.ipv4, .stream), handler: BadHandler.self, model: model.make(), bindAndActivate: false)
        server.log = log
        server.failure = failure
        try server.serverBind()
        try server.serverActivate()
        do {
            let client = try Client.connect(server.serverAddress)
            defer { client.close() }
            try client.shutdown(Int32(SHUT_WR))
            server.handleRequest()
            // The request is ended however the handler ended: the client sees EOF.
            XCTAssertEqual(try Client.readToEnd(client), [], file: file, line: line)
        }
        server.serverClose()  // waits for the thread or child
        XCTAssertEqual(log.contents, "Handler called\n" + (handled ? "Error handled\n" : ""), file: file, line: line)
    }

    func testSyncHandled() throws { try check(.serial, .throwError, handled: true) }
    func testSyncNotHandled() throws { try check(.serial, .exitWithoutError, handled: false) }
    func testThreadingHandled() throws { try check(.threading, .throwError, handled: true) }
    func testThreadingNotHandled() throws { try check(.threading, .exitWithoutError, handled: false) }
    func testForkingHandled() throws { try check(.forking, .throwError, handled: true) }
    func testForkingNotHandled() throws { try check(.forking, .exitWithoutError, handled: false) }

    /// After a handled error the server goes on serving, in every model.
    func testServerKeepsServingAfterAnError() throws {
        for model in TestModel.inThisRun {
            let log = LogFile(path: path("log-\(model)"))
            let server = try ErrorTestServer(address: address(.unixPath, .stream), handler: BadHandler.self, model: model.make())
            server.log = log
            try runServer(server) { address in
                let client = try Client.connect(address)
                defer { client.close() }
                try client.shutdown(Int32(SHUT_WR))
                try expect(try Client.readToEnd(client).isEmpty, "the connection was not just ended")
            }
            XCTAssertEqual(log.contents, String(repeating: "Handler called\nError handled\n", count: 3), "\(model)")
        }
    }
}
