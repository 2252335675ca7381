import Foundation
import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// Upstream failures produce Envoy's status codes and response flags, recorded on the hop.
@Suite(.serialized) struct ResilienceTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func outbound(
        to port: Int, timers: any RequestTimers = EventLoopTimers(), _ configure: (inout SidecarConfiguration) -> Void = { _ in }
    ) async throws -> TestSidecar {
        try await TestSidecar.start(group: group, timers: timers) { c in
            c.serviceName = "frontend"
            c.upstreams = [UpstreamService(name: "backend", host: "127.0.0.1", port: port)]
            configure(&c)
        }
    }

    @Test func unreachableUpstreamIs503UFAfterRetries() async throws {
        let dead = try refusingPort()
        let sidecar = try await outbound(to: dead)
        defer { Task { await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://backend/x", headers: [("x-request-id", "rid-1")])
        #expect(r.status == 503)
        #expect(r.head.headers["x-meshtrace-response-flags"] == ["UF,URX"])
        #expect(r.head.headers["x-request-id"] == ["rid-1"])
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        let hop = sidecar.hops(.outbound)[0]
        #expect(hop.statusCode == 503)
        #expect(hop.responseFlags == ["UF", "URX"])
        #expect(hop.retries == 2)
        #expect(hop.failureReason?.contains("connect") == true)
        #expect(hop.upstreamCluster == "outbound|80||backend")
        // The connection stays usable after a local reply.
        let again = try await client.send(.GET, "http://backend/y")
        #expect(again.status == 503)
        await client.close()
    }

    @Test func withoutRetriesTheFlagIsJustUF() async throws {
        let dead = try refusingPort()
        let sidecar = try await outbound(to: dead) { $0.maxRetries = 0 }
        defer { Task { await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://backend/x")
        #expect(r.status == 503)
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        #expect(sidecar.hops(.outbound)[0].responseFlags == ["UF"])
        #expect(sidecar.hops(.outbound)[0].retries == 0)
        await client.close()
    }

    @Test func exhaustedRetryBudgetStopsRetrying() async throws {
        let dead = try refusingPort()
        let sidecar = try await outbound(to: dead) { c in
            c.maxRetries = 5
            c.retryBudgetPercent = 0
            c.minRetryConcurrency = 0
        }
        defer { Task { await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://backend/x")
        #expect(r.status == 503)
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        let hop = sidecar.hops(.outbound)[0]
        #expect(hop.retries == 0)
        #expect(hop.responseFlags == ["UF", "URX"])
        #expect(sidecar.server.clusters.all.first?.snapshot.retriesDenied == 1)
        await client.close()
    }

    @Test func upstream503IsRetriedAndTheRetryAnswers() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: app.port)
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://backend/flaky/a?fail=1")
        #expect(r.status == 200)
        #expect(r.head.headers["x-meshtrace-response-flags"].isEmpty)
        #expect(app.requests.withLockedValue { $0.count } == 2)
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        let hop = sidecar.hops(.outbound)[0]
        #expect(hop.statusCode == 200)
        #expect(hop.retries == 1)
        #expect(hop.responseFlags.isEmpty)
        // The dropped 503's connection went back to the pool and the client's stays usable.
        #expect(try await client.send(.GET, "http://backend/ok").status == 200)
        await client.close()
    }

    @Test func retriesUsedUpPassTheUpstreams503WithURX() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: app.port)
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://backend/status/503")
        #expect(r.status == 503)
        #expect(r.head.headers["x-app"] == ["echo"], "the upstream's own response, not a local reply")
        #expect(app.requests.withLockedValue { $0.count } == 3)
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        let hop = sidecar.hops(.outbound)[0]
        #expect(hop.retries == 2)
        #expect(hop.responseFlags == ["URX"])
        await client.close()
    }

    @Test func statusRetriesReplayBodiesButSkipLargeOnesOtherStatusesInboundAndNone() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: app.port) { $0.appPort = app.port }
        let off = try await outbound(to: app.port) { $0.retryOnStatus = [] }
        defer { Task { await sidecar.stop(); await off.stop(); await app.close() } }
        func upstreamRequests(_ send: () async throws -> TestResponse) async throws -> (Int, Int) {
            let before = app.requests.withLockedValue { $0.count }
            let status = try await send().status
            return (status, app.requests.withLockedValue { $0.count } - before)
        }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        // A body is kept up to the replay limit and sent again whole; a larger one is not kept.
        let posted = try await upstreamRequests { try await client.send(.POST, "http://backend/flaky/post?fail=1", body: ByteBuffer(string: "payload")) }
        #expect(posted.0 == 200 && posted.1 == 2)
        #expect(app.requests.withLockedValue { $0.suffix(2).map(\.body) } == [7, 7])
        let big = ByteBuffer(repeating: UInt8(ascii: "b"), count: RetryPolicy.replayLimit + 1)
        let large = try await upstreamRequests { try await client.send(.POST, "http://backend/status/503", body: big) }
        #expect(large.0 == 503 && large.1 == 1)
        // Only the listed statuses.
        let other = try await upstreamRequests { try await client.send(.GET, "http://backend/status/502") }
        #expect(other.0 == 502 && other.1 == 1)
        await client.close()
        // The inbound side never retries (Istio's inbound policy has no status retries).
        let inbound = try await TestClient(group: group, port: sidecar.inboundPort)
        let served = try await upstreamRequests { try await inbound.send(.GET, "/status/503", headers: [("host", "frontend")]) }
        #expect(served.0 == 503 && served.1 == 1)
        await inbound.close()
        // `--retry-on-status none`.
        let offClient = try await TestClient(group: group, port: off.outboundPort)
        let passed = try await upstreamRequests { try await offClient.send(.GET, "http://backend/status/503") }
        #expect(passed.0 == 503 && passed.1 == 1)
        await offClient.close()
    }

    // The timeout tests below move the deadlines' clock themselves (`ManualRequestTimers`):
    // each timeout fires right after the event the test waited for, so a loaded machine can
    // neither fire it before the fast path answers nor let a held response beat it.

    @Test func slowUpstreamIs504UT() async throws {
        let app = try await EchoApp(group: group)
        let timers = ManualRequestTimers()
        let sidecar = try await outbound(to: app.port, timers: timers) { $0.requestTimeoutMillis = 150 }
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        async let reply = within(.seconds(60), "the 504") { try await client.send(.GET, "http://backend/hold") }
        #expect(await eventually { app.requestCount == 1 })
        #expect(await timers.advance(by: .milliseconds(149)) == 0, "not before the timeout")
        #expect(await timers.advance(by: .milliseconds(1)) == 1)
        let r = try await reply
        #expect(r.status == 504)
        #expect(r.head.headers["x-meshtrace-response-flags"] == ["UT"])
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        #expect(sidecar.hops(.outbound)[0].responseFlags == ["UT"])
        // A fast request afterwards on the same client connection works (fresh upstream connection).
        let ok = try await within(.seconds(60), "the next request") { try await client.send(.GET, "http://backend/fast") }
        #expect(ok.status == 200)
        await client.close()
    }

    /// Envoy's per-try timeout: an attempt with no response head in time is dropped and the
    /// request goes out again; the second attempt answers.
    @Test func perTryTimeoutRetriesASlowAttempt() async throws {
        let app = try await EchoApp(group: group)
        let timers = ManualRequestTimers()
        let sidecar = try await outbound(to: app.port, timers: timers) { c in
            c.perTryTimeoutMillis = 150
            c.requestTimeoutMillis = 10_000
        }
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let uri = "/hold-once/\(UUID().uuidString)"
        async let reply = within(.seconds(60), "the retried answer") {
            try await client.send(.POST, "http://backend" + uri, body: ByteBuffer(string: "order"))
        }
        #expect(await eventually { app.requestCount == 1 })
        #expect(await timers.advance(by: .milliseconds(149)) == 0, "not before the per-try timeout")
        #expect(await timers.advance(by: .milliseconds(1)) == 1)
        let r = try await reply
        #expect(r.status == 200)
        #expect(r.json["body_bytes"] as? Int == 5, "the kept body went out again")
        #expect(app.requests.withLockedValue { $0.filter { $0.head.uri == uri }.count } == 2)
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        let hop = sidecar.hops(.outbound)[0]
        #expect(hop.retries == 1 && hop.responseFlags.isEmpty && hop.statusCode == 200)
        await client.close()
    }

    /// The per-try timeout ends at the response head: a body slower than it is not cut.
    @Test func perTryTimeoutStopsAtTheResponseHead() async throws {
        let app = try await EchoApp(group: group)
        let timers = ManualRequestTimers()
        let sidecar = try await outbound(to: app.port, timers: timers) { $0.perTryTimeoutMillis = 100 }
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        async let reply = within(.seconds(60), "the held body") { try await client.send(.GET, "http://backend/hold-body") }
        #expect(await eventually { client.headsReceived == 1 }, "the head came through")
        await timers.advance(by: .seconds(10))  // far past the per-try timeout, before the body
        app.releaseHeld()
        let r = try await reply
        #expect(r.status == 200 && String(buffer: r.body) == "later")
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        #expect(sidecar.hops(.outbound)[0].retries == 0 && sidecar.hops(.outbound)[0].responseFlags.isEmpty)
        #expect(app.requestCount == 1)
        await client.close()
    }

    /// Every attempt slow: retries run out and the answer is 504 UT,URX, well before the
    /// request timeout; an inbound listener does not retry at all.
    @Test func perTryTimeoutsThatRunOutAre504() async throws {
        let app = try await EchoApp(group: group)
        let timers = ManualRequestTimers()
        let sidecar = try await outbound(to: app.port, timers: timers) { c in
            c.perTryTimeoutMillis = 100
            c.maxRetries = 1
            c.requestTimeoutMillis = 10_000
        }
        let inbound = try await TestSidecar.start(group: group, timers: timers) { c in
            c.serviceName = "backend"
            c.appPort = app.port
            c.outboundPort = -1
            c.perTryTimeoutMillis = 100
        }
        defer { Task { await sidecar.stop(); await inbound.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        async let reply = within(.seconds(60), "the 504") { try await client.send(.GET, "http://backend/hold") }
        #expect(await eventually { app.requestCount == 1 })
        #expect(await timers.advance(by: .milliseconds(100)) == 1)
        #expect(await eventually { app.requestCount == 2 }, "the retry")
        #expect(await timers.advance(by: .milliseconds(100)) == 1)
        let r = try await reply
        #expect(r.status == 504)
        #expect(r.head.headers["x-meshtrace-response-flags"] == ["UT,URX"])
        #expect(String(buffer: r.body).contains("per-try timeout"), "\(String(buffer: r.body))")
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        #expect(sidecar.hops(.outbound)[0].retries == 1)
        #expect(app.requestCount == 2)

        let direct = try await TestClient(group: group, port: inbound.inboundPort)
        async let inboundReply = within(.seconds(60), "the inbound 504") { try await direct.send(.GET, "/hold", headers: [("host", "backend")]) }
        #expect(await eventually { app.requestCount == 3 })
        #expect(await timers.advance(by: .milliseconds(100)) == 1)
        let answered = try await inboundReply
        #expect(answered.status == 504)
        #expect(answered.head.headers["x-meshtrace-response-flags"] == ["UT"])
        #expect(await eventually { inbound.hops(.inbound).count == 1 })
        #expect(inbound.hops(.inbound)[0].retries == 0 && app.requestCount == 3, "inbound: no retry")
        await client.close()
        await direct.close()
    }

    @Test func circuitBreakerOverflowIs503UO() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: app.port) { c in
            c.maxConnections = 1
            c.maxPendingRequests = 0
        }
        defer { Task { await sidecar.stop(); await app.close() } }
        let slowClient = try await TestClient(group: group, port: sidecar.outboundPort)
        async let slow = within(.seconds(60), "the held request") { try await slowClient.send(.GET, "http://backend/hold") }
        #expect(await eventually { app.requestCount == 1 }, "the one connection is busy")
        let other = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await within(.seconds(60), "the overflow") { try await other.send(.GET, "http://backend/x") }
        #expect(r.status == 503)
        #expect(r.head.headers["x-meshtrace-response-flags"] == ["UO"])
        app.releaseHeld()
        #expect(try await slow.status == 200)
        #expect(await eventually { sidecar.hops(.outbound).contains { $0.responseFlags == ["UO"] } })
        await slowClient.close()
        await other.close()
    }

    @Test func pendingRequestsWaitForAConnection() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: app.port) { c in
            c.maxConnections = 1
            c.maxPendingRequests = 10
        }
        defer { Task { await sidecar.stop(); await app.close() } }
        let a = try await TestClient(group: group, port: sidecar.outboundPort)
        let b = try await TestClient(group: group, port: sidecar.outboundPort)
        async let first = within(.seconds(60), "the held request") { try await a.send(.GET, "http://backend/hold") }
        #expect(await eventually { app.requestCount == 1 }, "the one connection is busy")
        async let second = within(.seconds(60), "the queued request") { try await b.send(.GET, "http://backend/queued") }
        #expect(await eventually { sidecar.server.clusters.all.first?.snapshot.pending == 1 }, "the second waits for the connection")
        #expect(app.requestCount == 1)
        app.releaseHeld()
        #expect(try await first.status == 200)
        #expect(try await second.status == 200)
        #expect(app.requests.withLockedValue { $0.map(\.head.uri) } == ["/hold", "/queued"], "on the one connection, in turn")
        #expect(sidecar.server.clusters.all.first?.snapshot.pending == 0)
        await a.close()
        await b.close()
    }

    @Test func upstreamResetBeforeHeadersIs503UC() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: app.port)
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://backend/close")
        #expect(r.status == 503)
        #expect(r.head.headers["x-meshtrace-response-flags"] == ["UC"])
        await client.close()
    }

    @Test func registryOnlyRefusesUnknownHostsWithNR() async throws {
        let sidecar = try await outbound(to: 1) { $0.outboundPolicy = .registryOnly }
        defer { Task { await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://unknown.example:8080/x")
        #expect(r.status == 502)
        #expect(r.head.headers["x-meshtrace-response-flags"] == ["NR"])
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        #expect(sidecar.hops(.outbound)[0].upstreamCluster == "BlackHoleCluster")
        #expect(sidecar.hops(.outbound)[0].destinationService == "unknown.example")
        await client.close()
    }

    @Test func allowAnyPassesUnknownHostsThrough() async throws {
        let app = try await EchoApp(group: group)
        let sidecar = try await outbound(to: 1)
        defer { Task { await sidecar.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://127.0.0.1:\(app.port)/direct")
        #expect(r.status == 200)
        #expect(r.json["uri"] as? String == "/direct")
        #expect(await eventually { sidecar.hops(.outbound).count == 1 })
        #expect(sidecar.hops(.outbound)[0].upstreamCluster == "PassthroughCluster")
        await client.close()
    }

    @Test func passthroughToTheProxyItselfIsALoop() async throws {
        let sidecar = try await outbound(to: 1)
        defer { Task { await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        let r = try await client.send(.GET, "http://127.0.0.1:\(sidecar.outboundPort)/self")
        #expect(r.status == 508)
        #expect(await eventually { sidecar.server.stats.snapshot.requestsActive == 0 })
        #expect(sidecar.server.stats.snapshot.requestsTotal == 2, "one hop in, one looped hop refused")
        await client.close()
    }

    @Test func gatewayRoutesByPrefixAndStartsTraces() async throws {
        let app = try await EchoApp(group: group)
        let backend = try await TestSidecar.start(group: group) { c in
            c.serviceName = "backend"
            c.appPort = app.port
            c.outboundPort = -1
        }
        let gateway = try await TestSidecar.start(group: group) { c in
            c.serviceName = "ingress"
            c.outboundPort = -1
            c.gatewayPort = 0
            c.upstreams = [UpstreamService(name: "backend", host: "127.0.0.1", port: backend.inboundPort)]
            c.routes = [GatewayRoute(prefix: "/api", service: "backend")]
        }
        defer { Task { await gateway.stop(); await backend.stop(); await app.close() } }
        let client = try await TestClient(group: group, port: gateway.gatewayPort)
        let r = try await client.send(.GET, "/api/orders")
        #expect(r.status == 200)
        let rid = try #require(r.echoedHeaders["x-request-id"]?.first)
        #expect(rid.count == 36)
        let nr = try await client.send(.GET, "/other")
        #expect(nr.status == 404)
        #expect(nr.head.headers["x-meshtrace-response-flags"] == ["NR"])
        #expect(await eventually { gateway.hops(.gateway).count == 2 && backend.hops(.inbound).count == 1 })
        let root = gateway.hops(.gateway)[0]
        #expect(root.context.parentSpanID == nil)
        #expect(root.upstreamCluster == "outbound|\(backend.inboundPort)||backend")
        #expect(backend.hops(.inbound)[0].context.parentSpanID == root.context.spanID)
        #expect(backend.hops(.inbound)[0].sourceService == "ingress")
        await client.close()
    }

    @Test func shutdownDrainsInFlightRequestsAndFlushes() async throws {
        let app = try await EchoApp(group: group)
        // Drain waits (real time) for the held request until the test releases it.
        let sidecar = try await outbound(to: app.port) { $0.drainTimeoutMillis = 60_000 }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        async let slow = within(.seconds(60), "the drained request") { try await client.send(.GET, "http://backend/hold") }
        #expect(await eventually { sidecar.server.stats.snapshot.requestsActive == 1 && app.requestCount == 1 })
        let stopping = Task { await sidecar.stop() }
        #expect(await eventually { sidecar.server.connections.isDraining }, "draining while the request is in flight")
        for loop in group.makeIterator() { try await loop.submit {}.get() }  // the drain events have run
        app.releaseHeld()
        await stopping.value
        let r = try await slow
        #expect(r.status == 200)
        #expect(r.head.headers["connection"] == ["close"])
        #expect(sidecar.telemetry.flushCount == 1)
        #expect(sidecar.hops(.outbound).count == 1)
        await app.close()
    }
}

/// The pools are per event loop and the limits per cluster: an idle connection on one loop must
/// not starve a request waiting on another.
@Suite struct PoolTests {
    @Test func waiterOnAnotherLoopGetsTheSlotOfAnIdleConnection() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let app = try await EchoApp(group: group)
        let loops = Array(group.makeIterator())
        #expect(loops.count == 2)
        let registry = PoolRegistry()
        let clusters = ClusterRegistry()
        let target = UpstreamTarget(clusterName: "outbound|80||echo", host: "127.0.0.1", port: app.port)
        let limits = UpstreamPool.Limits(maxConnections: 1, maxPending: 4, maxIdle: 4, connectTimeout: .seconds(2))

        // Loop 0: connect, then park the connection as idle.
        try await loops[0].submit {
            let pool = registry.pools(for: loops[0]).pool(for: target, clusters: clusters)
            guard case .waiting(let f, nil) = pool.acquire(limits: limits) else { throw PoolError.overflow }
            return f
        }.flatMap { $0 }.flatMapWithEventLoop { conn, loop in
            loop.submit { registry.pools(for: loops[0]).pool(for: target, clusters: clusters).release(conn, reusable: true, maxIdle: 4) }
        }.get()
        #expect(clusters.cluster(for: target).snapshot.connections == 1)

        // Loop 1: at the limit, so it waits; loop 0 must give up its idle connection.
        let served = try await loops[1].submit { () -> EventLoopFuture<UpstreamConnection> in
            let pool = registry.pools(for: loops[1]).pool(for: target, clusters: clusters)
            switch pool.acquire(limits: limits) {
            case .waiting(let f, let id):
                #expect(id != nil, "must queue, not connect")
                // Fail instead of hanging when nobody ever serves the waiter.
                let bounded = loops[1].makePromise(of: UpstreamConnection.self)
                f.cascade(to: bounded)
                loops[1].scheduleTask(in: .seconds(60)) { bounded.fail(PoolError.cancelled) }
                return bounded.futureResult
            case .ready, .overflow:
                throw PoolError.overflow
            }
        }.flatMap { $0 }.get()
        #expect(served.channel.eventLoop === loops[1])
        #expect(clusters.cluster(for: target).snapshot.connections == 1)
        #expect(clusters.cluster(for: target).snapshot.pending == 0)
        try await served.channel.close()
        await app.close()
        try await group.shutdownGracefully()
    }
}
