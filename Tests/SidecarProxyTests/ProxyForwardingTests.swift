import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// Real sockets on port 0: an echo app behind an inbound sidecar, reached through an outbound
/// sidecar, as in a mesh.
@Suite(.serialized) struct ProxyForwardingTests {
    let group = MultiThreadedEventLoopGroup.singleton

    /// app <- inbound(backend) <- outbound(frontend) <- client
    func mesh(_ configure: (inout SidecarConfiguration) -> Void = { _ in }) async throws -> (EchoApp, TestSidecar, TestSidecar) {
        let app = try await EchoApp(group: group)
        let backend = try await TestSidecar.start(group: group) { c in
            c.serviceName = "backend"
            c.appPort = app.port
            c.outboundPort = -1
            configure(&c)
        }
        let frontend = try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.upstreams = [UpstreamService(name: "backend", host: "127.0.0.1", port: backend.inboundPort)]
            configure(&c)
        }
        return (app, backend, frontend)
    }

    @Test func absoluteFormThroughOutboundAndInboundPropagatesAndRecords() async throws {
        let (app, backend, frontend) = try await mesh()
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        let parent = "00f067aa0ba902b7"
        let r = try await client.send(.GET, "http://backend:8080/api/items?x=1", headers: [
            ("host", "backend:8080"), ("traceparent", "00-\(traceID)-\(parent)-01"), ("tracestate", "vendor=abc"),
            ("x-request-id", "req-123"), ("sw8", "1-abc"), ("baggage", "k=v"), ("x-datadog-trace-id", "42"),
            ("x-ot-span-context", "ot"), ("user-agent", "unit/1"), ("connection", "keep-alive, x-secret"), ("x-secret", "hop"),
            ("proxy-authorization", "Basic abc"),
        ])
        #expect(r.status == 200)
        let h = r.echoedHeaders
        #expect(r.json["uri"] as? String == "/api/items?x=1")
        #expect(h["x-request-id"] == ["req-123"])
        #expect(h["sw8"] == ["1-abc"])
        #expect(h["baggage"] == ["k=v"])
        #expect(h["x-datadog-trace-id"] == ["42"])
        #expect(h["x-ot-span-context"] == ["ot"])
        #expect(h["tracestate"] == ["vendor=abc"])
        #expect(h["x-secret"] == nil)
        #expect(h["proxy-authorization"] == nil)
        #expect(h["x-envoy-downstream-service-cluster"] == nil, "inbound strips it before the app")
        #expect(h["host"] == ["backend:8080"])
        let tp = try #require(h["traceparent"]?.first)
        let ctx = try #require(W3CTraceContext.parse(tp))
        #expect(ctx.traceID.hex32 == traceID)
        #expect(h["x-b3-traceid"] == [traceID])
        #expect(h["x-b3-spanid"] == [ctx.spanID.hex])
        #expect(h["x-b3-sampled"] == ["1"])

        #expect(await eventually { frontend.hops(.outbound).count == 1 && backend.hops(.inbound).count == 1 })
        let client_ = try #require(frontend.hops(.outbound).first)
        let server = try #require(backend.hops(.inbound).first)
        // CLIENT span: child of the app's span; SERVER span: child of the CLIENT span; app sees SERVER span id.
        #expect(client_.context.traceID.hex32 == traceID)
        #expect(client_.context.parentSpanID?.hex == parent)
        #expect(server.context.parentSpanID == client_.context.spanID)
        #expect(server.context.spanID == ctx.spanID)
        #expect(h["x-b3-parentspanid"] == [client_.context.spanID.hex])
        #expect(client_.context.spanID.hex != parent && server.context.spanID != client_.context.spanID)
        #expect(client_.requestID == "req-123" && server.requestID == "req-123")
        #expect(client_.statusCode == 200 && server.statusCode == 200)
        #expect(client_.upstreamCluster == "outbound|8080||backend")
        #expect(server.upstreamCluster == "inbound|\(app.port)||")
        #expect(client_.destinationService == "backend" && server.destinationService == "backend")
        #expect(server.sourceService == "frontend")
        #expect(client_.sourceService == "frontend")
        #expect(client_.method == "GET" && client_.path == "/api/items?x=1" && client_.authority == "backend:8080")
        #expect(client_.userAgent == "unit/1")
        #expect(client_.upstreamAddress == "127.0.0.1:\(backend.inboundPort)")
        #expect(server.upstreamAddress == "127.0.0.1:\(app.port)")
        #expect(client_.responseBytes == r.body.readableBytes && server.responseBytes == r.body.readableBytes)
        #expect(client_.sampled && server.sampled)
        #expect(client_.responseFlags.isEmpty && server.responseFlags.isEmpty)
        #expect(client_.downstreamAddress?.hasPrefix("127.0.0.1:") == true)
        #expect(client_.durationNanos > 0 && client_.startNanos > 1_600_000_000_000_000_000)
        await client.close()
    }

    @Test func keepAliveReusesUpstreamConnectionsAndGeneratesRequestIDs() async throws {
        let (app, backend, frontend) = try await mesh()
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        var ids = Set<String>()
        for i in 0..<20 {
            let r = try await client.send(.GET, "http://backend/n/\(i)")
            #expect(r.status == 200)
            let id = try #require(r.echoedHeaders["x-request-id"]?.first)
            #expect(id.count == 36 && Array(id)[14] == "4", "UUIDv4: \(id)")
            ids.insert(id)
        }
        #expect(ids.count == 20)
        // One client connection, sequential requests: the pools reuse one connection per hop.
        let clusters = frontend.server.clusters.all
        #expect(clusters.count == 1)
        #expect(clusters.first?.snapshot.connections == 1)
        #expect(backend.server.clusters.all.first?.snapshot.connections == 1)
        await client.close()
    }

    @Test func streamsLargeBodiesBothWays() async throws {
        let (app, backend, frontend) = try await mesh()
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        let body = ByteBuffer(repeating: UInt8(ascii: "a"), count: 3_000_000)
        let up = try await client.send(.POST, "http://backend/upload", body: body)
        #expect(up.status == 200)
        #expect(up.json["body_bytes"] as? Int == 3_000_000)
        let chunked = try await client.send(.POST, "http://backend/upload", headers: [("transfer-encoding", "chunked")], body: ByteBuffer(string: "hello"))
        #expect(chunked.json["body_bytes"] as? Int == 5)
        let down = try await client.send(.GET, "http://backend/stream?chunks=64&size=65536")
        #expect(down.status == 200 && down.body.readableBytes == 64 * 65536)
        #expect(await eventually { frontend.hops(.outbound).count == 3 })
        let hops = frontend.hops(.outbound)
        #expect(hops[0].requestBytes == 3_000_000)
        #expect(hops[2].responseBytes == 64 * 65536)
        await client.close()
    }

    @Test func invalidTraceHeadersRestartTheTraceWithoutFailing() async throws {
        let (app, backend, frontend) = try await mesh()
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        for bad in [("traceparent", "garbage"), ("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                    ("b3", "not-b3"), ("x-b3-traceid", "xyz"), ("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")] {
            let r = try await client.send(.GET, "http://backend/x", headers: [bad, ("tracestate", "a=b")])
            #expect(r.status == 200, "\(bad)")
            let tp = try #require(r.echoedHeaders["traceparent"]?.first)
            #expect(W3CTraceContext.parse(tp) != nil)
            #expect(r.echoedHeaders["tracestate"] == nil, "tracestate is dropped with an invalid traceparent")
        }
        await client.close()
    }

    @Test func b3InputAndHealthChecksAndSampling() async throws {
        let (app, backend, frontend) = try await mesh { $0.samplingPercent = 0 }
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        // B3 single with sampled=1 is honoured even at 0%.
        let r1 = try await client.send(.GET, "http://backend/a", headers: [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")])
        #expect(r1.echoedHeaders["x-b3-traceid"] == ["80f198ee56343ba864fe8b2a57d3eff7"])
        #expect(r1.echoedHeaders["x-b3-sampled"] == ["1"])
        // No context at 0%: not sampled, still propagated.
        let r2 = try await client.send(.GET, "http://backend/b")
        #expect(r2.echoedHeaders["x-b3-sampled"] == ["0"])
        // Not sampled, and the random-trace-id flag (W3C Level 2) of the trace frontend started.
        #expect(r2.echoedHeaders["traceparent"]?.first?.hasSuffix("-02") == true)
        // Forced by x-client-trace-id and by B3 debug.
        let r3 = try await client.send(.GET, "http://backend/c", headers: [("x-client-trace-id", "abc")])
        #expect(r3.echoedHeaders["x-b3-sampled"] == ["1"])
        let r4 = try await client.send(.GET, "http://backend/d", headers: [("x-b3-flags", "1")])
        #expect(r4.echoedHeaders["x-b3-flags"] == ["1"])
        // Health checks are never sampled, even when forced by the upstream decision.
        let r5 = try await client.send(.GET, "http://backend/healthz", headers: [("x-b3-sampled", "1")])
        #expect(r5.echoedHeaders["x-b3-sampled"] == ["0"])
        #expect(r5.echoedHeaders["traceparent"] != nil)
        #expect(await eventually { frontend.hops(.outbound).count == 5 })
        #expect(frontend.hops(.outbound).map(\.sampled) == [true, false, true, true, false])
        await client.close()
    }

    @Test func customTagsFromLiteralEnvAndHeader() async throws {
        let (app, backend, frontend) = try await mesh { c in
            c.customTags = [
                CustomTag(name: "env", source: .literal("prod")),
                CustomTag(name: "home", source: .environment(name: "HOME", value: "/root")),
                CustomTag(name: "tenant", source: .header("x-tenant")),
                CustomTag(name: "missing", source: .header("x-missing")),
            ]
        }
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        _ = try await client.send(.GET, "http://backend/t", headers: [("x-tenant", "acme")])
        #expect(await eventually { frontend.hops(.outbound).count == 1 })
        let tags = frontend.hops(.outbound)[0].customTags
        #expect(tags.map(\.key) == ["env", "home", "tenant"])
        #expect(tags.map(\.value) == ["prod", "/root", "acme"])
        await client.close()
    }

    @Test func propagationFormatsAreConfigurable() async throws {
        let (app, backend, frontend) = try await mesh { $0.propagation = [.b3single] }
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        let r = try await client.send(.GET, "http://backend/p", headers: [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("tracestate", "k=v")])
        let h = r.echoedHeaders
        #expect(h["traceparent"] == nil && h["x-b3-traceid"] == nil)
        #expect(h["b3"]?.first?.hasPrefix("4bf92f3577b34da6a3ce929d0e0e4736-") == true)
        #expect(h["tracestate"] == ["k=v"])
        await client.close()
    }

    /// An upstream that answers `Connection: close`: the proxy closes that connection as the
    /// response ends, which is inside the parse of that connection's bytes (once a runtime
    /// exclusivity trap), and the next request goes out on a new one.
    @Test func upstreamClosingAfterEachResponseIsNotReused() async throws {
        let (app, backend, frontend) = try await mesh()
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let client = try await TestClient(group: group, port: frontend.outboundPort)
        for i in 0..<5 {
            let r = try await client.send(.GET, "http://backend/closing?i=\(i)")
            #expect(r.status == 200)
            #expect(r.head.headers["connection"].allSatisfy { $0.lowercased() != "close" }, "the client's connection stays open")
        }
        await client.close()
        #expect(await eventually { backend.hops(.inbound).count == 5 })
        #expect(backend.hops(.inbound).allSatisfy { $0.statusCode == 200 && $0.responseFlags.isEmpty })
    }

    @Test func pipelinedRequestsAnswerInOrder() async throws {
        let (app, backend, frontend) = try await mesh()
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let req = (1...3).map { "GET http://backend/slow?ms=\(40 - $0 * 10)&n=\($0) HTTP/1.1\r\nHost: backend\r\n\r\n" }.joined()
            + "GET http://backend/last HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n"
        let raw = try await rawExchange(group: group, port: frontend.outboundPort, req)
        let order = ["n=1", "n=2", "n=3", "/last"].compactMap { raw.range(of: $0)?.lowerBound }
        #expect(order.count == 4 && order == order.sorted(), "\(raw)")
    }
}

/// Many clients at once across every event loop: every request answered, every hop recorded once.
@Suite(.serialized) struct ConcurrencyTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func concurrentClientsThroughTwoSidecars() async throws {
        let forwarding = ProxyForwardingTests()
        let (app, backend, frontend) = try await forwarding.mesh { $0.maxIdlePerUpstream = 8 }
        defer { Task { await app.close(); await backend.stop(); await frontend.stop() } }
        let clients = 32
        let perClient = 25
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { tasks in
            for c in 0..<clients {
                tasks.addTask {
                    let client = try await TestClient(group: group, port: frontend.outboundPort)
                    var got: [Int] = []
                    for i in 0..<perClient {
                        let body = i % 5 == 0 ? ByteBuffer(repeating: 0x41, count: 10_000 * (c % 3 + 1)) : nil
                        let r = try await client.send(i % 5 == 0 ? .POST : .GET, "http://backend/c\(c)/\(i)", body: body)
                        got.append(r.status)
                        if r.json["uri"] as? String != "/c\(c)/\(i)" { got.append(-1) }
                    }
                    await client.close()
                    return got
                }
            }
            var all: [Int] = []
            for try await s in tasks { all += s }
            return all
        }
        #expect(statuses.count == clients * perClient)
        #expect(statuses.allSatisfy { $0 == 200 })
        #expect(await eventually { frontend.hops(.outbound).count == clients * perClient && backend.hops(.inbound).count == clients * perClient })
        let clientSpans = Set(frontend.hops(.outbound).map(\.context.spanID))
        let serverParents = Set(backend.hops(.inbound).compactMap(\.context.parentSpanID))
        #expect(clientSpans == serverParents)
        #expect(frontend.server.stats.snapshot.requestsActive == 0)
        #expect(backend.server.clusters.all.allSatisfy { $0.snapshot.activeRequests == 0 && $0.snapshot.pending == 0 })
    }
}
