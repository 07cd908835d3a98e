// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "conveyor",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Conveyor", targets: ["Conveyor"]),
        .library(name: "ConveyorPostgres", targets: ["ConveyorPostgres"]),
        .library(name: "ConveyorLocalPostgres", targets: ["ConveyorLocalPostgres"]),
        .library(name: "ConveyorHTTP", targets: ["ConveyorHTTP"]),
        .executable(name: "conveyor", targets: ["ConveyorCLI"]),
        .executable(name: "receipt-server", targets: ["ReceiptServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "ConveyorCore",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Conveyor",
            dependencies: [
                "ConveyorCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConveyorPostgres",
            dependencies: [
                "Conveyor",
                "ConveyorCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The admin API and dashboard, as a Hummingbird RouteCollection.
        .target(
            name: "ConveyorHTTP",
            dependencies: [
                "Conveyor",
                "ConveyorCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.embedInCode("Dashboard/dashboard.js"), .embedInCode("Dashboard/dashboard.css")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConveyorLocalPostgres",
            dependencies: [
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ConveyorCLI",
            dependencies: [
                "Conveyor",
                "ConveyorCore",
                "ConveyorPostgres",
                "ConveyorLocalPostgres",
                "ConveyorHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // A small server app that embeds Conveyor, built with the package (the README's code comes from it).
        .executableTarget(
            name: "ReceiptServer",
            dependencies: [
                "Conveyor",
                "ConveyorHTTP",
                "ConveyorPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/ReceiptServer",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConveyorCoreTests",
            dependencies: ["ConveyorCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConveyorLocalPostgresTests",
            dependencies: ["ConveyorLocalPostgres"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConveyorTests",
            dependencies: [
                "Conveyor",
                "ConveyorCore",
                "ConveyorPostgres",
                "ConveyorLocalPostgres",
                "ConveyorHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
