// The OTLP/gRPC rows of the collector benchmark (main.swift): end to end through grpc-swift's
// client, and the receiver's message codec alone.
import Collector
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import MeshtraceTesting
import TraceWire

// MARK: 2b. end-to-end over gRPC (grpc-swift's client, one connection per sender, as the HTTP senders)
struct RawBytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

func grpcRate(_ backend: Backend, batch: Int) async throws -> Double {
    let opened = try await backend.open("e2e-grpc-\(batch)")
    try await opened.store.close()  // the collector opens its own
    let (task, addresses) = try await startCollector(backend, opened)
    guard let port = addresses.otlpGRPCPort else { throw CancellationError() }
    let spans = makeSpans(count: ingestSpans, seed: UInt64(batch) &* 31 &+ 10, baseNanos: now - 3_600_000_000_000)
    var bodies: [[UInt8]] = []
    var i = 0
    while i < spans.count {
        bodies.append(OTLPProto.encode(Array(spans[i..<min(i + batch, spans.count)])))
        i += batch
    }
    let payloads = bodies
    let senders = connections
    let started = ContinuousClock.now
    let failures = try await withThrowingTaskGroup(of: Int.self) { group in
        for c in 0..<senders {
            group.addTask {
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
                return try await withGRPCClient(transport: transport) { client in
                    var failed = 0
                    for (n, body) in payloads.enumerated() where n % senders == c {
                        while true {
                            do {
                                try await client.unary(
                                    request: ClientRequest(message: body), descriptor: OTLPGRPCService.export,
                                    serializer: RawBytesSerializer(), deserializer: RawBytesDeserializer(), options: .defaults
                                ) { _ = try $0.message }
                                break
                            } catch let error as RPCError where error.code == .unavailable {
                                continue  // the queue is full: send again, as the HTTP senders do on 503
                            } catch {
                                failed += 1
                                break
                            }
                        }
                    }
                    return failed
                }
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - started
    await task.stop()
    try await opened.cleanup()
    if failures > 0 { say("  warning: \(failures) calls failed") }
    return rate(spans.count, elapsed)
}

/// The gRPC message codec alone: bytes to spans by the hand-written decoder (what the receiver
/// plugs in) and by GRPCProtobuf's generated-message deserializer plus the conversion to spans.
func codecRates(batch: Int) throws -> (hand: Double, generated: Double) {
    let spans = makeSpans(count: ingestSpans, seed: 77, baseNanos: now - 3_600_000_000_000)
    var bodies: [[UInt8]] = []
    var i = 0
    while i < spans.count {
        bodies.append(OTLPProto.encode(Array(spans[i..<min(i + batch, spans.count)])))
        i += batch
    }
    let hand = OTLPBatchDeserializer(limits: .default)
    let generated = ProtobufDeserializer<Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest>()
    var best = (hand: 0.0, generated: 0.0)
    for _ in 0..<3 {
        var decoded = 0
        var started = ContinuousClock.now
        for body in bodies { decoded += try hand.deserialize(body).spans.count }
        best.hand = max(best.hand, rate(decoded, ContinuousClock.now - started))
        decoded = 0
        started = ContinuousClock.now
        for body in bodies { decoded += OTLPProto.batch(from: try generated.deserialize(body)).spans.count }
        best.generated = max(best.generated, rate(decoded, ContinuousClock.now - started))
    }
    return best
}
