// swift-tools-version:6.0
// libFuzzer targets for serverd's parsers (issue 7). A package of its own so that the main build
// and `make test` never see `-sanitize=fuzzer`; `make fuzz-smoke` / `make fuzz` build it with
//
//     swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
//         -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
//         -Xcc -fsanitize=fuzzer-no-link,address -Xcxx -fsanitize=fuzzer-no-link,address
//
// (`-enable-testing` lets fuzz-fdnames reach the library's internal, uncached adoption path
// through `@testable import FamilyServer`.)
//
// The configuration layer lives in the `serverd` executable target, which no other package can
// import. The ServerdConfiguration target compiles those very files: its Options, CommandLine,
// ConfigFile (with the TOML parser), Plan, ExitStatus.swift and the single files they need
// (LogDestination.swift, InheritedSocketPool.swift, HandedOverSockets.swift) are symbolic links into
// ../Sources/serverd, so fuzz-config and fuzz-options always run the daemon's current parsers, not
// copies.
//
// Each fuzzer's main code hands its `LLVMFuzzerTestOneInput` to `LLVMFuzzerRunDriver`, libFuzzer's
// entry for programs with a main of their own: SwiftPM gives every Swift executable a main, which
// would otherwise shadow libFuzzer's.
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned; compute it rather than assume it.
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let package = Package(
    name: "serverd-fuzz",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver for the fuzzers' main code.
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "fuzz-address",
            dependencies: ["FuzzDriver", .product(name: "FamilyServer", package: mainPackage)]
        ),
        .executableTarget(
            name: "fuzz-fdnames",
            dependencies: ["FuzzDriver", .product(name: "FamilyServer", package: mainPackage)]
        ),
        .executableTarget(
            name: "fuzz-linereader",
            dependencies: ["FuzzDriver", .product(name: "FamilyServer", package: mainPackage)]
        ),
        .executableTarget(
            name: "fuzz-datagram",
            dependencies: ["FuzzDriver", .product(name: "FamilyServer", package: mainPackage)]
        ),
        // The daemon's configuration layer (options, command line, configuration file, plan),
        // compiled from its own files (symbolic links).
        .target(
            name: "ServerdConfiguration",
            dependencies: [
                .product(name: "FamilyServer", package: mainPackage),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "fuzz-config",
            dependencies: ["FuzzDriver", "ServerdConfiguration", .product(name: "FamilyServer", package: mainPackage)]
        ),
        .executableTarget(
            name: "fuzz-options",
            dependencies: ["FuzzDriver", "ServerdConfiguration", .product(name: "FamilyServer", package: mainPackage)]
        ),
        // serverd's own TOML parser, compiled from its files (a symbolic link), without TOMLKit.
        .target(name: "ServerdTOML"),
        .executableTarget(
            name: "fuzz-toml",
            dependencies: ["FuzzDriver", "ServerdTOML"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
