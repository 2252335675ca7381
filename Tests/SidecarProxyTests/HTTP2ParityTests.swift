import MeshtraceTesting
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// Behaviour HTTP/1 has that HTTP/2 must have too, because both run the same request start
/// (`HopStart`): loop detection and parent inference, each checked on an HTTP/2 call (the
/// HTTP/1 side is in `ResilienceTests` and `ParentInferenceTests`).
@Suite(.serialized) struct HTTP2ParityTests {
    typealias App = HTTP2RelayTests.App
    typealias Client = HTTP2RelayTests.Client
    let group = MultiThreadedEventLoopGroup.singleton

    static func plainCall(_ path: String, extra: [(String, String)] = []) -> HPACKHeaders {
        var headers: HPACKHeaders = [":method": "GET", ":scheme": "http", ":authority": "reports", ":path": path]
        for (name, value) in extra { headers.add(name: name, value: value) }
        return headers
    }

    /// An HTTP/2 call that reaches an outbound listener already marked as having left a proxy
    /// is a loop: 508 at once (UNAVAILABLE for gRPC), and the app never sees it.
    @Test func aMarkedCallOnAnOutboundListenerIsALoop() async throws {
        let app = try await App(group: group)
        let sidecar = try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.appPort = nil
            c.upstreams = [UpstreamService(name: "reports", host: "127.0.0.1", port: app.port)]
            c.defaultUpstream = "reports"
        }
        defer { Task { await app.close(); await sidecar.stop() } }
        let client = try await Client.connect(group: group, port: sidecar.outboundPort)
        defer { Task { await client.close() } }

        let looped = try await client.call(Self.plainCall("/plain", extra: [("x-meshtrace-via", "outbound")]))
        #expect(looped.status == "508")
        #expect(String(buffer: looped.body).contains("looped back"))
        let grpc = try await client.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say", extra: [("x-meshtrace-via", "gateway")]), body: "x")
        #expect(grpc.status == "200" && grpc.grpcStatus == "14", "gRPC callers get UNAVAILABLE")
        let fine = try await client.call(Self.plainCall("/plain"))
        #expect(fine.status == "200", "an unmarked call goes through")
        #expect(app.seen.withLockedValue { $0.count } == 1, "the looped calls never reached the app")
        #expect(await eventually { sidecar.hops(.outbound).count == 3 })
        #expect(sidecar.hops(.outbound).map(\.statusCode).sorted { ($0 ?? 0) < ($1 ?? 0) } == [200, 200, 508])
    }

    /// Status retries on one endpoint, as `ResilienceTests` checks them for HTTP/1: an outbound
    /// call answered 503 every time goes out 1 + `maxRetries` times and the last 503 reaches the
    /// client flagged `URX`; an inbound call is never retried.
    @Test func a503IsRetriedOutboundOnlyUntilRetriesRunOut() async throws {
        let app = try await App(group: group, answer: .status("503"))
        let sidecar = try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.appPort = app.port
            c.upstreams = [UpstreamService(name: "reports", host: "127.0.0.1", port: app.port)]
            c.defaultUpstream = "reports"
        }
        defer { Task { await app.close(); await sidecar.stop() } }
        let outbound = try await Client.connect(group: group, port: sidecar.outboundPort)
        let inbound = try await Client.connect(group: group, port: sidecar.inboundPort)
        defer { Task { await outbound.close(); await inbound.close() } }
        let retried = try await outbound.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say"), body: "x")
        #expect(retried.status == "503")
        #expect(app.seen.withLockedValue { $0.count } == 3)
        let served = try await inbound.call(Self.plainCall("/plain"))
        #expect(served.status == "503")
        #expect(app.seen.withLockedValue { $0.count } == 4, "the inbound call went to the app once")
        #expect(await eventually { sidecar.hops(.outbound).count == 1 && sidecar.hops(.inbound).count == 1 })
        #expect(sidecar.hops(.outbound).map(\.retries) == [2] && sidecar.hops(.outbound).map(\.responseFlags) == [["URX"]])
        #expect(sidecar.hops(.inbound).map(\.retries) == [0] && sidecar.hops(.inbound).map(\.responseFlags) == [[]])
    }

    /// With parent inference on, an HTTP/2 call the app makes without trace headers while one
    /// inbound request is in flight joins that request's trace, as an HTTP/1 call does.
    @Test func anOutboundCallWithoutContextIsInferred() async throws {
        let inboundApp = try await EchoApp(group: group)
        let reports = try await App(group: group)
        let sidecar = try await TestSidecar.start(group: group) { c in
            c.serviceName = "backend"
            c.appPort = inboundApp.port
            c.inferParent = true
            c.upstreams = [UpstreamService(name: "reports", host: "127.0.0.1", port: reports.port)]
            c.defaultUpstream = "reports"
        }
        defer { Task { await inboundApp.close(); await reports.close(); await sidecar.stop() } }
        let inboundClient = try await TestClient(group: group, port: sidecar.inboundPort)
        let held = Task { try await within(.seconds(60), "the held inbound request") { try await inboundClient.send(.GET, "/hold") } }
        #expect(await eventually { sidecar.server.inference.inFlightCount == 1 })

        let client = try await Client.connect(group: group, port: sidecar.outboundPort)
        defer { Task { await client.close() } }
        let call = try await client.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say"), body: "x")
        #expect(call.grpcStatus == "0")
        inboundApp.releaseHeld()
        _ = try await held.value

        #expect(await eventually { sidecar.hops(.inbound).count == 1 && sidecar.hops(.outbound).count == 1 })
        let inbound = try #require(sidecar.hops(.inbound).first)
        let outbound = try #require(sidecar.hops(.outbound).first)
        #expect(outbound.parentInferred && outbound.httpProtocol == "HTTP/2")
        #expect(outbound.context.traceID == inbound.context.traceID)
        #expect(outbound.context.parentSpanID == inbound.context.spanID)
        let seen = try #require(reports.seen.withLockedValue { $0 }.first)
        #expect(seen.first(name: "traceparent")?.contains(inbound.context.traceID.hex32) == true, "the inferred context went upstream")
        #expect(sidecar.server.inference.counts == ParentInference.Counts(inferred: 1, ambiguous: 0, none: 0))
    }

    /// An inbound HTTP/2 call in flight is a parent for the app's calls (here an HTTP/1 one),
    /// and is released once answered.
    @Test func anInboundCallInFlightIsAParent() async throws {
        let app = try await App(group: group)
        let database = try await EchoApp(group: group)
        let sidecar = try await TestSidecar.start(group: group) { c in
            c.serviceName = "reports"
            c.appPort = app.port
            c.inferParent = true
            c.upstreams = [UpstreamService(name: "database", host: "127.0.0.1", port: database.port)]
        }
        defer { Task { await app.close(); await database.close(); await sidecar.stop() } }
        let inboundClient = try await Client.connect(group: group, port: sidecar.inboundPort)
        defer { Task { await inboundClient.close() } }
        let held = Task { try await within(.seconds(60), "the held call") { try await inboundClient.call(HTTP2RelayTests.grpcCall("/echo.Echo/Held"), body: "x") } }
        #expect(await eventually { sidecar.server.inference.inFlightCount == 1 })

        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://database/records", headers: [("host", "database")])
        #expect(r.status == 200)
        app.releaseHeld()
        #expect(try await held.value.grpcStatus == "0")
        #expect(await eventually { sidecar.server.inference.inFlightCount == 0 }, "the answered call is released")

        #expect(await eventually { sidecar.hops(.inbound).count == 1 && sidecar.hops(.outbound).count == 1 })
        let inbound = try #require(sidecar.hops(.inbound).first)
        let outbound = try #require(sidecar.hops(.outbound).first)
        #expect(outbound.parentInferred && outbound.context.parentSpanID == inbound.context.spanID)
        await client.close()
    }
}

/// W3C Level 2's multi-line rules on HTTP/2, where each field line is its own HPACK entry:
/// several tracestate entries are one list; two traceparent entries restart the trace.
@Suite(.serialized) struct HTTP2TraceContextTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func repeatedW3CFieldsCombineOnHTTP2() async throws {
        let app = try await HTTP2RelayTests.App(group: group)
        let proxy = try await TestSidecar.start(group: group) { c in
            c.serviceName = "reports"
            c.appPort = app.port
            c.outboundPort = -1
        }
        defer { Task { await app.close(); await proxy.stop() } }
        let client = try await HTTP2RelayTests.Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close() } }
        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        let valid = "00-\(traceID)-00f067aa0ba902b7-01"
        _ = try await client.call(HTTP2RelayTests.grpcCall(
            "/echo.Echo/Say", extra: [("traceparent", valid), ("tracestate", "a=1"), ("tracestate", "b=2")]), body: "x")
        _ = try await client.call(HTTP2RelayTests.grpcCall(
            "/echo.Echo/Say", extra: [("traceparent", valid), ("traceparent", valid), ("tracestate", "a=1")]), body: "x")
        let seen = app.seen.withLockedValue { $0 }
        #expect(seen.count == 2)
        let lines = try #require(seen.first)
        #expect(lines.first(name: "traceparent")?.contains(traceID) == true)
        #expect(lines.filter { $0.name == "tracestate" }.map(\.value) == ["a=1,b=2"], "one field, the list in order")
        let twice = try #require(seen.last)
        #expect(twice.filter { $0.name == "traceparent" }.count == 1)
        #expect(twice.first(name: "traceparent")?.contains(traceID) == false, "two traceparents restart the trace")
        #expect(twice.first(name: "tracestate") == nil, "and take tracestate with them")
    }
}
