import Foundation
import Instrumentation
import Logging
import NIOPosix
import TraceExport
import TraceModel

/// Setup helpers for services: build a `MeshtraceTracer` that exports to a collector, and
/// optionally install it as the process-wide tracer.
public enum MeshtraceTracing {
    /// Read when no collector URL is passed explicitly.
    public static let collectorEnvironmentVariable = "MESHTRACE_COLLECTOR"

    public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Builds a tracer, installs it with `InstrumentationSystem.bootstrap` (so `withSpan`,
    /// Hummingbird's `TracingMiddleware` and async-http-client pick it up) and starts its
    /// export loop. Call `shutdown()` on the result before exiting to export buffered spans.
    ///
    /// `InstrumentationSystem.bootstrap` may run only once per process (it traps otherwise);
    /// use `makeTracer` to create further tracers and pass them around explicitly.
    ///
    /// - Parameters:
    ///   - collector: see `exportTarget(collector:environment:)`; nil reads `MESHTRACE_COLLECTOR`.
    ///   - sampling: percentage 0...100 of new traces to record; traces started upstream keep
    ///     the upstream decision.
    @discardableResult
    public static func bootstrap(
        serviceName: String,
        collector: String? = nil,
        formats: [PropagationFormat] = [.w3c, .b3multi],
        sampling: Double = 100,
        logger: Logger = Logger(label: "meshtrace.tracing")
    ) throws -> MeshtraceTracer {
        let tracer = try makeTracer(serviceName: serviceName, collector: collector, formats: formats, sampling: sampling, logger: logger)
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }

    /// Like `bootstrap` without touching the process-wide `InstrumentationSystem`: the export
    /// loop is running, the caller passes the tracer where it is needed.
    public static func makeTracer(
        serviceName: String,
        collector: String? = nil,
        formats: [PropagationFormat] = [.w3c, .b3multi],
        sampling: Double = 100,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "meshtrace.tracing")
    ) throws -> MeshtraceTracer {
        let target = try exportTarget(collector: collector, environment: environment)
        var exporter: (any SpanExporter)?
        if target.kind != .none {
            guard let made = target.makeExporter(group: MultiThreadedEventLoopGroup.singleton) else {
                throw ConfigurationError(description: "cannot export to collector URL '\(target.url ?? "")'")
            }
            exporter = made
        } else {
            logger.notice("no collector configured (\(collectorEnvironmentVariable) is unset); spans propagate but are not exported")
        }
        let tracer = MeshtraceTracer(
            serviceName: serviceName, exporter: exporter, formats: formats, sampler: Sampler(percent: sampling), logger: logger)
        tracer.startExporting()
        return tracer
    }

    /// Where spans go, from `collector` or else `$MESHTRACE_COLLECTOR`:
    /// - `http://host:9411/api/v2/spans`: Zipkin v2 JSON;
    /// - `http://host:4318/v1/traces`: OTLP/HTTP protobuf;
    /// - `grpc://host:4317`: OTLP/gRPC (plaintext, one kept HTTP/2 connection);
    /// - a base URL (`http://host:port`): OTLP/HTTP on port 4318, OTLP/gRPC on 4317, Zipkin
    ///   otherwise, with the standard path;
    /// - unset, empty or `none`: export disabled.
    public static func exportTarget(collector: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SpanExportTarget {
        let raw = (collector ?? environment[collectorEnvironmentVariable] ?? "").trimmingCharacters(in: .whitespaces)
        if raw.isEmpty || raw.lowercased() == "none" { return .disabled }
        guard let components = URLComponents(string: raw), components.scheme == "http" || components.scheme == "grpc",
              let host = components.host, !host.isEmpty
        else {
            throw ConfigurationError(description: "collector must be an http:// URL such as http://127.0.0.1:9411 (or grpc://host:4317), got '\(raw)'")
        }
        let path = components.percentEncodedPath
        if components.scheme == "grpc" {
            guard path.isEmpty || path == "/" else {
                throw ConfigurationError(description: "an OTLP/gRPC collector URL has no path: grpc://host:4317, got '\(raw)'")
            }
            return SpanExportTarget(kind: .otlpGRPC, url: raw)
        }
        if path.isEmpty || path == "/" {
            var base = raw
            while base.hasSuffix("/") { base.removeLast() }
            if components.port == 4317 { return SpanExportTarget(kind: .otlpGRPC, url: base) }
            return components.port == 4318
                ? SpanExportTarget(kind: .otlp, url: base + "/v1/traces")
                : SpanExportTarget(kind: .zipkin, url: base + "/api/v2/spans")
        }
        guard let target = SpanExportTarget.resolve(url: raw, explicit: nil) else {
            throw ConfigurationError(description: "collector URL '\(raw)' must end in /api/v2/spans (Zipkin) or /v1/traces (OTLP), or be a base URL")
        }
        return target
    }
}
