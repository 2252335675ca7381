import Foundation
import MeshtraceTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// Parent inference on real sockets: one sidecar (inbound in front of an echo app, outbound for
/// the app's calls). Inbound `/hold` requests stand for requests the app is still serving; an
/// outbound call without trace headers stands for the app's call made while serving them.
@Suite(.serialized) struct ParentInferenceTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func sidecar(infer: Bool = true) async throws -> (EchoApp, TestSidecar) {
        let app = try await EchoApp(group: group)
        let sidecar = try await TestSidecar.start(group: group) { c in
            c.serviceName = "backend"
            c.appPort = app.port
            c.inferParent = infer
            // The app's own calls go to "database", which is the same echo app here.
            c.upstreams = [UpstreamService(name: "database", host: "127.0.0.1", port: app.port)]
        }
        return (app, sidecar)
    }

    /// Starts `n` inbound requests that stay in flight until the app releases them, and waits
    /// until the sidecar has them.
    func holdInbound(_ sidecar: TestSidecar, _ n: Int) async throws -> [Task<TestResponse, any Error>] {
        var tasks: [Task<TestResponse, any Error>] = []
        for _ in 0..<n {
            let client = try await TestClient(group: group, port: sidecar.inboundPort)
            tasks.append(Task { try await within(.seconds(60), "a held inbound request") { try await client.send(.GET, "/hold") } })
        }
        let inference = sidecar.server.inference
        #expect(await eventually { inference.inFlightCount == n })
        return tasks
    }

    @Test func oneInboundInFlightIsTheParent() async throws {
        let (app, sidecar) = try await sidecar()
        defer { Task { await app.close(); await sidecar.stop() } }
        let held = try await holdInbound(sidecar, 1)
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://database/records?report=1", headers: [("host", "database")])
        #expect(r.status == 200)
        app.releaseHeld()
        for t in held { _ = try await t.value }

        let inbound = try #require(sidecar.hops(.inbound).first)
        let outbound = try #require(sidecar.hops(.outbound).first)
        #expect(outbound.parentInferred)
        #expect(outbound.context.traceID == inbound.context.traceID)
        #expect(outbound.context.parentSpanID == inbound.context.spanID)
        #expect(outbound.requestID == inbound.requestID, "the app dropped x-request-id too: the served request's is used")
        // The context went upstream: the callee sees the inbound trace in traceparent.
        let traceparent = try #require(r.echoedHeaders["traceparent"]?.first)
        #expect(traceparent.contains(inbound.context.traceID.hex32) && traceparent.contains(outbound.context.spanID.hex))
        let span = HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "backend")).span(for: outbound, samplingPercent: 100)
        #expect(span.attribute("meshtrace.parent_inferred") == .bool(true))
        #expect(span.attribute("meshtrace.propagation.extracted") == .string("none"))
        #expect(sidecar.server.inference.counts == ParentInference.Counts(inferred: 1, ambiguous: 0, none: 0))
        #expect(sidecar.server.inference.inFlightCount == 0, "answered requests are released")
    }

    @Test func twoInboundInFlightIsAmbiguousAndNeverGuessed() async throws {
        let (app, sidecar) = try await sidecar()
        defer { Task { await app.close(); await sidecar.stop() } }
        let held = try await holdInbound(sidecar, 2)
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://database/records?report=1", headers: [("host", "database")])
        #expect(r.status == 200)
        app.releaseHeld()
        for t in held { _ = try await t.value }

        let outbound = try #require(sidecar.hops(.outbound).first)
        #expect(!outbound.parentInferred)
        #expect(outbound.context.parentSpanID == nil, "left a new root")
        #expect(!sidecar.hops(.inbound).contains { $0.context.traceID == outbound.context.traceID })
        #expect(sidecar.server.inference.counts == ParentInference.Counts(inferred: 0, ambiguous: 1, none: 0))
        // Exposed where operators look.
        let dump = ConfigDump.render(sidecar.server.configuration.config, addresses: sidecar.addresses, inference: sidecar.server.inference)
        #expect(dump.contains(#""parent_inference":{"enabled":true,"inferred":0,"ambiguous":1,"none":0}"#))
        let metrics = sidecar.server.metricsResponse(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/stats/prometheus"))
        #expect(metrics.body.contains(#"meshtrace_sidecar_parent_inference_total{service="backend",result="ambiguous"} 1"#))
    }

    @Test func callsWithContextOrWithInferenceOffAreUntouched() async throws {
        let (app, sidecar) = try await sidecar(infer: false)
        defer { Task { await app.close(); await sidecar.stop() } }
        let held = try await holdInbound(sidecar, 0)
        _ = held
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        _ = try await client.send(.GET, "http://database/a", headers: [("host", "database")])
        #expect(sidecar.hops(.outbound).first?.parentInferred == false)
        #expect(sidecar.server.inference.counts == ParentInference.Counts())

        sidecar.server.configuration.update { $0.inferParent = true }
        // Nothing in flight: counted as none.
        _ = try await client.send(.GET, "http://database/b", headers: [("host", "database")])
        // Headers present: not inference's business at all.
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        _ = try await client.send(.GET, "http://database/c", headers: [("host", "database"), ("traceparent", parent)])
        #expect(sidecar.server.inference.counts == ParentInference.Counts(inferred: 0, ambiguous: 0, none: 1))
        let withContext = try #require(sidecar.hops(.outbound).last)
        #expect(!withContext.parentInferred && withContext.propagationExtracted == "w3c")
    }
}
