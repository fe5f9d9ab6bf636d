import CShims
@testable import FamilyServer
import Glibc
import XCTest

/// The /proc path a reply to a filesystem datagram sender goes through.
final class OwnDescriptorPathTests: FamilyServerTestCase {
    /// The inode a path leads to, or `nil`.
    private func inode(at path: String) -> ino_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_ino : nil
    }

    func testThePathIsNumericAndLeadsToTheDescriptorsFile() throws {
        let fd = open(directory, cshims_o_path | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var info = stat()
        XCTAssertEqual(fstat(fd, &info), 0)
        let path = OwnDescriptorPath.of(fd)
        // The suite's /proc is this pid namespace's: the pid form is taken.
        XCTAssertEqual(path, "/proc/\(getpid())/fd/\(fd)")
        XCTAssertEqual(inode(at: path), info.st_ino)
    }

    /// A forked child names its own descriptors, not the parent's it inherited the lookup from: the same number in
    /// the parent is another file there.
    func testAForkedChildGetsItsOwnPid() throws {
        let parentOnly = open(directory, cshims_o_path | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(parentOnly, 0)
        _ = OwnDescriptorPath.of(parentOnly)
        let file = path("child-only")
        XCTAssertEqual(mkdir(file, 0o700), 0)
        let child = try ClientProcess {
            // The child's own file under the number the parent uses for the directory.
            let opened = open(file, cshims_o_path | O_CLOEXEC)
            guard opened >= 0, dup2(opened, parentOnly) == parentOnly else { throw TestFailure("open/dup2 \(file)") }
            close(opened)
            let fd = parentOnly
            let path = OwnDescriptorPath.of(fd)
            guard path == "/proc/\(getpid())/fd/\(fd)" else { throw TestFailure("the child's path is \(path)") }
            var own = stat(), named = stat()
            guard fstat(fd, &own) == 0, stat(path, &named) == 0, own.st_ino == named.st_ino else {
                throw TestFailure("\(path) does not lead to the child's file")
            }
        }
        try child.wait()
        close(parentOnly)
    }
}
