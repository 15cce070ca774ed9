// swift-tools-version:5.9
import PackageDescription

// Layers depend one way: C shims → Kernels → Model → … → the `ptune` command.

// The element-wise kernels (GELU, softmax, LayerNorm, dropout, AdamW) vectorize twice as wide
// with AVX2 and FMA, which every x86-64 server since Haswell (2013) has.
#if arch(x86_64)
let kernelSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let kernelSettings: [SwiftSetting] = []
#endif

let package = Package(
    name: "PTune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ptune", targets: ["PTuneCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]
        ),
        .systemLibrary(
            name: "CDNNL",
            providers: [.apt(["libdnnl-dev"])]
        ),
        .target(name: "Kernels", dependencies: ["CDNNL"], swiftSettings: kernelSettings),
        .target(name: "Model", dependencies: ["Kernels"]),
        .target(name: "Tuning", dependencies: ["Model"]),
        .target(name: "Tasks", dependencies: ["Tuning"]),
        .target(name: "Distributed", dependencies: ["Tasks", "CMPI"]),
        .target(name: "Training", dependencies: ["Distributed", .product(name: "Crypto", package: "swift-crypto")]),
        // `ptune serve`: the registry's adapters over one base, behind HTTP.
        .target(
            name: "Serving",
            dependencies: [
                "Kernels",
                "Model",
                "Tuning",
                "Tasks",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "PTuneCLI",
            dependencies: [
                "Kernels",
                "Model",
                "Tuning",
                "Tasks",
                "Training",
                "Serving",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["Model"], path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "TestSupport"]),
        .testTarget(name: "TuningTests", dependencies: ["Tuning", "TestSupport"]),
        .testTarget(name: "TasksTests", dependencies: ["Tasks", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "TestSupport"]),
        .testTarget(name: "PTuneCLITests", dependencies: ["Model", "Distributed", "TestSupport"]),
    ]
)
