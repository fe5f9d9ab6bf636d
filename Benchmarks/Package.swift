// swift-tools-version:6.0
// The benchmark peers that need SwiftNIO. A package of its own, so that the main build and
// `make test` never compile SwiftNIO; `make bench` builds it with its own scratch path.
import PackageDescription

let package = Package(
    name: "serverd-benchmarks",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "nio-echo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/nio-echo"
        ),
    ],
    swiftLanguageModes: [.v6]
)
