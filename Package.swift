// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "serverd",
    products: [
        .executable(name: "serverd", targets: ["serverd"]),
        .library(name: "FamilyServer", targets: ["FamilyServer"]),
        // The async layer over FamilyServer, in its own product so that the `serverd` binary never links
        // swift-service-lifecycle.
        .library(name: "FamilyServerLifecycle", targets: ["FamilyServerLifecycle"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // `make docs` only: the plugin is built when documentation is generated, never by `swift build`.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // libsystemd's sd-daemon API (Debian: libsystemd-dev for the header). Not linked: shim.h binds the calls
        // with dlopen on first use, so that a start without systemd never loads libsystemd and its dependencies.
        .systemLibrary(
            name: "CSystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // The few Linux calls the Glibc module does not export (accept4, eventfd, signalfd, ucred).
        .target(name: "CShims"),
        .target(
            name: "FamilyServer",
            dependencies: [
                "CSystemd",
                "CShims",
                .product(name: "Logging", package: "swift-log"),
                // CoreMetrics alone: the Metrics target adds Timer conveniences that import FoundationEssentials,
                // a 10 MB library every start of the `serverd` binary would load and relocate.
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "FamilyServerLifecycle",
            dependencies: [
                "FamilyServer",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // README's async echo server, run by FamilyServerLifecycleTests as a real process.
        .executableTarget(
            name: "async-echo-example",
            dependencies: [
                "FamilyServer",
                "FamilyServerLifecycle",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/AsyncEcho"
        ),
        .executableTarget(
            name: "serverd",
            dependencies: [
                "FamilyServer",
                "CShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(
            name: "FamilyServerTests",
            dependencies: ["FamilyServer", "CShims", .product(name: "Metrics", package: "swift-metrics")]
        ),
        .testTarget(
            name: "FamilyServerLifecycleTests",
            dependencies: [
                "FamilyServer",
                "FamilyServerLifecycle",
                "async-echo-example",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "ServerdTests", dependencies: ["serverd", "FamilyServer", "CShims"],
            // The suite's own socket-activation launcher and local attacker, run with python3.
            exclude: [
                "Support/launch.py", "Support/attacker.py", "Support/toml_reference.py", "Support/wait_program.py",
                "Support/fd_store.py",
                "TOMLCorpus",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
