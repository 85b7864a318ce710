// swift-tools-version:6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "StackVault",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "stackvault", targets: ["StackVaultRunner"]),
        .library(name: "StackVaultCore", targets: ["StackVaultCore"]),
        .library(name: "StackVaultStrategies", targets: ["StackVaultStrategies"]),
        .library(name: "StackVaultStorage", targets: ["StackVaultStorage"]),
        .library(name: "StackVaultMetrics", targets: ["StackVaultMetrics"]),
        .library(name: "StackVaultTestKit", targets: ["StackVaultTestKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        // METRICS_ADDR: the HTTP listener (NIOPosix + NIOHTTP1) and the Prometheus registry.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
    ],
    targets: [
        // C libraries from Debian, one system-library target each.
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CSystem/CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CSystem/CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(
            name: "CXXHash",
            path: "Sources/CSystem/CXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/CSystem/COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CArchive",
            path: "Sources/CSystem/CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]
        ),
        // zlib: only the unit tests use it, to inflate the compressed age test vectors (C2SP CCTV).
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CSystem/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Compiled shims: typed, non-variadic wrappers that Swift can call.
        .target(
            name: "CStackVaultShims",
            dependencies: ["CCurl"],
            path: "Sources/CSystem/CStackVaultShims"
        ),
        .target(
            name: "StackVaultCore",
            dependencies: [
                "CCurl", "CZstd", "CXXHash", "COpenSSL", "CArchive", "CStackVaultShims",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Core",
            swiftSettings: strictSwift
        ),
        .target(
            name: "StackVaultStrategies",
            dependencies: [
                "StackVaultCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Strategies",
            swiftSettings: strictSwift
        ),
        .target(
            name: "StackVaultStorage",
            dependencies: [
                "StackVaultCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Storage",
            swiftSettings: strictSwift
        ),
        .target(
            name: "StackVaultMetrics",
            dependencies: [
                "StackVaultCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/Metrics",
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "StackVaultRunner",
            dependencies: [
                "StackVaultCore", "StackVaultStrategies", "StackVaultStorage", "StackVaultMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Runner",
            swiftSettings: strictSwift
        ),
        .target(
            name: "StackVaultTestKit",
            dependencies: [
                "StackVaultCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/TestKit",
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "StackVaultUnitTests",
            dependencies: [
                "StackVaultCore", "StackVaultStrategies", "StackVaultStorage", "StackVaultMetrics", "StackVaultTestKit",
                "CZlib",
            ],
            path: "Tests/StackVaultUnitTests",
            exclude: ["Fixtures"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "StackVaultIntegrationTests",
            dependencies: ["StackVaultCore", "StackVaultStrategies", "StackVaultStorage", "StackVaultTestKit"],
            path: "IntegrationTests",
            exclude: ["Fixtures"],
            swiftSettings: strictSwift
        ),
    ],
    swiftLanguageModes: [.v6]
)
