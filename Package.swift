// swift-tools-version:6.1
import PackageDescription

// One module per concern; README.md, "Layout", has the map.
let package = Package(
    name: "meshtrace",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "meshtrace", targets: ["meshtrace"]),
        .executable(name: "meshtrace-sidecar", targets: ["meshtrace-sidecar"]),
        .library(name: "TraceModel", targets: ["TraceModel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // ClickHouse's HTTP interface (`--storage clickhouse`). Only TraceStorage uses it, so the
        // sidecar-only binary, which never links TraceStorage, does not carry it.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // TLS for the injector webhook, and the certificates `meshtrace install` generates for it.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // OTLP/gRPC ingest on 4317 (the collector only: the sidecar and MeshtraceTracing speak
        // the one unary export call over swift-nio-http2; docs/performance.md has the sizes).
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    ],
    targets: [
        // zlib from the system (zlib1g-dev): gzip bodies on ingest, with an output cap.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Spans, ids, attributes, trace-context propagation. No networking.
        .target(name: "TraceModel", swiftSettings: dataPlaneSettings),

        // Wire formats: Zipkin v2 JSON/proto3, OTLP protobuf/JSON, SkyWalking segments, Jaeger UI JSON, gzip.
        .target(
            name: "TraceWire",
            dependencies: [
                "TraceModel", "CZlib",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Generated/README.md"],
            swiftSettings: dataPlaneSettings
        ),

        // The TraceStore protocol and its backends (in-memory, SQLite, ClickHouse over HTTP).
        .target(
            name: "TraceStorage",
            dependencies: [
                "TraceModel", "TraceWire",  // TraceWire: gzip for ClickHouse insert bodies
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // Configuration files read through Yams' node tree so every error names the file, line,
        // column and field (`YAMLFieldReader`, `ConfigFileError`): mesh.yaml (MeshRunner) and the
        // tail-sampling policy file (Collector) share it.
        .target(
            name: "ConfigYAML",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),

        // Tail-based sampling as a pure state machine (spans and times in, decisions out) and the
        // OpenTelemetry tail sampler's policies. No I/O, no clock: the collector drives it.
        .target(
            name: "TailSampling",
            dependencies: ["TraceModel"]
        ),

        // `meshtrace collector`: receivers, ingest queue, query APIs, admin. gRPC (grpc-swift 2)
        // serves OTLP/gRPC and SkyWalking's report; its server set-up (`GRPCListener`) takes any
        // service on its own port. Tail sampling's stage (`TailSamplingService`, driving
        // `TailSampling`), its policy file (Yams), the pre-sampling RED aggregate, and forwarding
        // to peer collectors (TraceExport's HTTP client) live here too.
        .target(
            name: "Collector",
            dependencies: [
                "TraceModel", "TraceWire", "TraceStorage", "TraceAnalysis", "TailSampling", "TraceExport", "ConfigYAML",
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),  // SkyWalking's generated messages
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            // The web UI's sources; scripts/embed-ui compiles them into UI/EmbeddedAssets.swift.
            // UI/package.json only tells node (tests/js) that the assets are ES modules.
            exclude: ["UI/Assets", "UI/package.json"]
        ),

        // Batching span export to a collector (Zipkin v2 JSON/proto, OTLP/HTTP, or OTLP/gRPC over
        // swift-nio-http2), shared by the sidecar and the MeshtraceTracing library.
        .target(
            name: "TraceExport",
            dependencies: [
                "TraceModel", "TraceWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: dataPlaneSettings
        ),

        // `meshtrace sidecar`: the SwiftNIO data plane (inbound, outbound, gateway listeners)
        // and its telemetry (spans, export, Istio metrics), joined only by `ProxyTelemetry`.
        .target(
            name: "SidecarProxy",
            dependencies: [
                "TraceModel", "TraceWire", "TraceExport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: dataPlaneSettings
        ),

        // A swift-distributed-tracing `Tracer` for Swift services: W3C + B3, exports to the
        // collector, so app spans join the sidecar's spans in one trace.
        .target(
            name: "MeshtraceTracing",
            dependencies: [
                "TraceModel", "TraceExport",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The demo mesh's three services (frontend, backend, database) and its traffic generator.
        // They use no tracing library for propagation: they forward headers, as apps behind Istio must.
        .target(
            name: "DemoServices",
            dependencies: [
                "TraceModel", "TraceExport", "MeshtraceTracing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // `meshtrace up` / `demo`: mesh.yaml, service processes, in-process sidecars and
        // the control plane that changes their telemetry live; with `capture: netns`, each
        // service in a network namespace with CaptureRules' rules (`Capture/`).
        .target(
            name: "MeshRunner",
            dependencies: [
                "TraceModel", "TraceExport", "SidecarProxy", "Collector", "TraceStorage", "CaptureRules",
                "TailSampling", "ConfigYAML",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        // `meshtrace analyze`: finds where traces break (dropped context, orphans, partial
        // propagation, clock skew, sampling flips, uninstrumented hops) and computes critical paths.
        .target(
            name: "TraceAnalysis",
            dependencies: ["TraceModel"]
        ),

        // Transparent capture's nat rules (`meshtrace iptables`, Istio's istio-init): the rule
        // plan, and installing it with the iptables programs. Foundation only, no networking.
        .target(name: "CaptureRules"),

        // Kubernetes: `meshtrace inject` (YAML in, injected YAML out), the `meshtrace injector`
        // admission webhook (the same change as a JSON patch, over TLS) and `meshtrace install`'s
        // manifests. Only the all-in-one binary links it: the sidecar-only binary stays free of
        // TLS and YAML rewriting.
        .target(
            name: "MeshKube",
            dependencies: [
                "TraceWire",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // The single `meshtrace` binary: argument parsing and wiring only.
        // `meshtrace sidecar`'s and `meshtrace iptables`' commands, shared with the sidecar-only binary.
        .target(
            name: "SidecarCLI",
            dependencies: [
                "SidecarProxy", "TraceExport", "CaptureRules",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "meshtrace-sidecar",
            dependencies: ["SidecarCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "meshtrace",
            dependencies: [
                "Collector", "TraceStorage", "SidecarProxy", "SidecarCLI", "TraceExport", "DemoServices", "MeshRunner", "TraceAnalysis", "MeshKube",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // Test doubles and oracles, used only by the test targets below, never by the product:
        // a recording ProxyTelemetry, an in-memory SpanExporter, request timers on a clock the
        // test moves, the reference OTLP/Zipkin protobuf codecs built on SwiftProtobuf's
        // generated code (the hand-written ones in TraceWire are held to them), damage to a
        // SQLite store's file, ports that refuse, a deadline for awaits a bug could hang, and a
        // clock the test moves (`ManualClock`, for code generic over `Clock`).
        // It depends on the modules it fakes or checks; nothing in Sources depends on it.
        .target(
            name: "MeshtraceTesting",
            dependencies: [
                "TraceModel", "TraceWire", "TraceExport", "TraceStorage", "SidecarProxy",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // Benchmarks live beside the code they measure; run with scripts/bench-collector.
        .executableTarget(
            name: "CollectorBenchmark",
            dependencies: [
                "TraceModel", "TraceWire", "TraceStorage", "Collector", "MeshtraceTesting",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            path: "Benchmarks/collector",
            exclude: ["otlp_instructions.sh"]
        ),

        // Tail sampling: ingest with it on and off, the state machine alone, memory per buffered
        // trace. Run with scripts/bench-tail-sampling.
        .executableTarget(
            name: "TailSamplingBenchmark",
            dependencies: [
                "TraceModel", "TraceWire", "TailSampling", "Collector", "TraceStorage",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/tailsampling"
        ),

        .testTarget(name: "TraceModelTests", dependencies: ["TraceModel"]),
        .testTarget(name: "CaptureRulesTests", dependencies: ["CaptureRules"]),
        .testTarget(name: "TraceWireTests", dependencies: ["TraceWire", "TraceModel", "MeshtraceTesting"]),
        .testTarget(name: "TraceStorageTests", dependencies: ["TraceStorage", "TraceModel", "MeshtraceTesting", "CaptureRules"]),
        .testTarget(
            name: "SidecarProxyTests",
            dependencies: [
                "SidecarProxy", "TraceModel", "TraceWire", "TraceExport", "MeshtraceTesting",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .testTarget(name: "MeshtraceTracingTests", dependencies: ["MeshtraceTracing", "TraceModel", "TraceExport", "MeshtraceTesting"]),
        .testTarget(name: "DemoServicesTests", dependencies: ["DemoServices", "TraceModel", "MeshtraceTesting"]),
        .testTarget(name: "TraceAnalysisTests", dependencies: ["TraceAnalysis", "TraceModel"]),
        .testTarget(name: "MeshRunnerTests", dependencies: ["MeshRunner", "TraceModel", "MeshtraceTesting", "Collector", "TailSampling"]),
        .testTarget(name: "MeshKubeTests", dependencies: ["MeshKube", "TraceWire"], exclude: ["Golden"]),
        // HummingbirdTesting: the query routes answered in process, through the router.
        .testTarget(
            name: "CollectorTests",
            dependencies: [
                "Collector", "TraceWire", "TraceStorage", "TraceModel", "TailSampling", "MeshtraceTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        .testTarget(name: "TailSamplingTests", dependencies: ["TailSampling", "TraceModel", "MeshtraceTesting"]),
    ],
    swiftLanguageModes: [.v6]
)

// The data plane's release builds (the proxy, and the span model, wire formats and export it
// shares with the collector) skip the runtime exclusivity checks: on the sidecar's event loop
// they were about a twentieth of the instructions per request (a thread-local lookup and a set
// insert per class-property access). Debug builds, and so every test, keep them; the compiler's
// static checks stay in all builds.
var dataPlaneSettings: [SwiftSetting] { [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))] }
