import Foundation
import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TraceModel

@testable import SidecarProxy
@testable import TraceExport

/// A server that answers every connection with fixed bytes once it has the request (head and
/// Content-Length body), then closes; or never answers, or closes at once. Raw bytes, so tests
/// can send what a real HTTP server library would never produce.
final class CannedHTTPServer: Sendable {
    enum Behaviour: Sendable {
        case answer(String)
        case answerBytes([UInt8])
        case silent
        case closeImmediately
    }

    let channel: any Channel
    let requests = NIOLockedValueBox<[String]>([])
    var port: Int { channel.localAddress?.port ?? 0 }
    var url: String { "http://127.0.0.1:\(port)" }

    init(_ behaviour: Behaviour, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        let requests = self.requests
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CannedHandler(behaviour: behaviour, requests: requests))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var lastRequest: String { requests.withLockedValue { $0.last ?? "" } }

    func close() async { try? await channel.close() }
}

final class CannedHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let behaviour: CannedHTTPServer.Behaviour
    let requests: NIOLockedValueBox<[String]>
    var received = ByteBuffer()
    var answered = false

    init(behaviour: CannedHTTPServer.Behaviour, requests: NIOLockedValueBox<[String]>) {
        self.behaviour = behaviour
        self.requests = requests
    }

    func channelActive(context: ChannelHandlerContext) {
        if case .closeImmediately = behaviour { context.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        received.writeBuffer(&chunk)
        let text = String(buffer: received)
        guard !answered, let headEnd = text.range(of: "\r\n\r\n") else { return }
        let head = text[..<headEnd.lowerBound].lowercased()
        let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        guard text.utf8.count - text.utf8.distance(from: text.startIndex, to: headEnd.upperBound) >= length else { return }
        answered = true
        requests.withLockedValue { $0.append(text) }
        let bytes: [UInt8]
        switch behaviour {
        case .answer(let response): bytes = Array(response.utf8)
        case .answerBytes(let response): bytes = response
        case .silent, .closeImmediately: return
        }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

@Suite struct OneShotHTTPClientTests {
    @Test func getSendsPathQueryAndCloseAndReturnsStatusHeadersBody() async throws {
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Thing: yes\r\n\r\nhello"))
        defer { Task { await server.close() } }
        let response = try await OneShotHTTPClient.send(.GET, url: "\(server.url)/api/traces?service=a%20b&limit=5", timeout: .seconds(30))
        #expect(response.status == 200)
        #expect(response.header("x-thing") == "yes")
        #expect(String(decoding: response.body, as: UTF8.self) == "hello")
        #expect(!response.bodyTruncated)
        let request = server.lastRequest
        #expect(request.hasPrefix("GET /api/traces?service=a%20b&limit=5 HTTP/1.1\r\n"))
        #expect(request.contains("Host: 127.0.0.1:\(server.port)\r\n"))
        #expect(request.contains("Connection: close\r\n"))
        #expect(!request.lowercased().contains("content-length"), "a GET without a body sends no length")
    }

    @Test func postSendsBodyContentTypeAndExtraHeadersButNotDuplicatesOfManagedOnes() async throws {
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
        defer { Task { await server.close() } }
        let response = try await OneShotHTTPClient.send(
            .PUT, url: server.url + "/mesh/telemetry", body: Array(#"{"a":1}"#.utf8), contentType: "application/json",
            headers: [("X-Extra", "1"), ("Content-Length", "999"), ("Host", "elsewhere"), ("User-Agent", "custom")],
            timeout: .seconds(30))
        #expect(response.status == 201)
        #expect(response.body.isEmpty)
        let request = server.lastRequest
        #expect(request.hasPrefix("PUT /mesh/telemetry HTTP/1.1\r\n"))
        #expect(request.hasSuffix("\r\n\r\n{\"a\":1}"))
        #expect(request.contains("Content-Type: application/json\r\n"))
        #expect(request.contains("Content-Length: 7\r\n"))
        // Whole header lines: the server's ephemeral port (in Host) can itself contain "999".
        #expect(!request.contains("Content-Length: 999") && !request.contains("Host: elsewhere"))
        #expect(request.contains("X-Extra: 1\r\n"))
        #expect(request.contains("User-Agent: custom\r\n") && !request.contains("User-Agent: meshtrace\r\n"))
    }

    @Test func postWithoutBodySaysLengthZero() async throws {
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        defer { Task { await server.close() } }
        _ = try await OneShotHTTPClient.send(.POST, url: server.url + "/x", timeout: .seconds(30))
        #expect(server.lastRequest.contains("Content-Length: 0\r\n"))
    }

    @Test func readsChunkedAndCloseDelimitedBodies() async throws {
        let chunked = try await CannedHTTPServer(.answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"))
        defer { Task { await chunked.close() } }
        #expect(try await OneShotHTTPClient.send(.GET, url: chunked.url, timeout: .seconds(30)).body == Array("abcdefg".utf8))

        let untilClose = try await CannedHTTPServer(.answer("HTTP/1.1 200 OK\r\n\r\nuntil the end"))
        defer { Task { await untilClose.close() } }
        #expect(try await OneShotHTTPClient.send(.GET, url: untilClose.url, timeout: .seconds(30)).body == Array("until the end".utf8))
    }

    @Test func errorStatusesAreResponsesNotErrors() async throws {
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"))
        defer { Task { await server.close() } }
        let response = try await OneShotHTTPClient.send(.GET, url: server.url, timeout: .seconds(30))
        #expect(response.status == 503)
        #expect(response.retryAfterSeconds == 7)
        #expect(response.body == Array("busy".utf8))
    }

    @Test func bodyLimitFailsOrTruncates() async throws {
        let big = String(repeating: "x", count: 10_000)
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 200 OK\r\nContent-Length: \(big.utf8.count)\r\n\r\n\(big)"))
        defer { Task { await server.close() } }
        await #expect(throws: OneShotHTTPClient.Failure.bodyTooLarge(limit: 1000)) {
            try await OneShotHTTPClient.send(.GET, url: server.url, timeout: .seconds(30), bodyLimit: .fail(atMost: 1000))
        }
        let truncated = try await OneShotHTTPClient.send(.GET, url: server.url, timeout: .seconds(30), bodyLimit: .truncate(keeping: 300))
        #expect(truncated.status == 200)
        #expect(truncated.body.count == 300)
        #expect(truncated.bodyTruncated)
    }

    @Test func refusesNonHTTPURLsWithAClearError() async {
        for url in ["https://127.0.0.1:1/x", "ftp://x/", "127.0.0.1:15100/mesh/status", "http:///nohost", ""] {
            await #expect(throws: OneShotHTTPClient.Failure.unsupportedURL(url)) {
                try await OneShotHTTPClient.send(.GET, url: url, timeout: .seconds(1))
            }
        }
        #expect(OneShotHTTPClient.Failure.unsupportedURL("https://a/").description.contains("only http://"))
    }

    @Test func connectionRefusedNamesTheTargetAndReason() async throws {
        let port = try refusingPort()
        do {
            _ = try await OneShotHTTPClient.send(.GET, url: "http://127.0.0.1:\(port)/mesh/status", timeout: .seconds(30))
            Issue.record("expected a connect failure")
        } catch let failure as OneShotHTTPClient.Failure {
            #expect(failure == .connectFailed(target: "127.0.0.1:\(port)", reason: "connection refused"))
            #expect(failure.localizedDescription == "cannot connect to 127.0.0.1:\(port): connection refused")
        }
    }

    @Test func throughAProxyTheRequestLineCarriesTheAbsoluteURLAndHostStaysTheTargets() async throws {
        let proxy = try await CannedHTTPServer(.answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        defer { Task { await proxy.close() } }
        let via = OneShotHTTPClient.Proxy(host: "127.0.0.1", port: proxy.port)
        let response = try await OneShotHTTPClient.send(.GET, url: "http://backend:8080/reports/7?x=1", timeout: .seconds(30), via: via)
        #expect(response.status == 200 && response.body == Array("ok".utf8))
        #expect(proxy.lastRequest.hasPrefix("GET http://backend:8080/reports/7?x=1 HTTP/1.1\r\n"))
        #expect(proxy.lastRequest.contains("Host: backend:8080\r\n"))

        var bare = try #require(HTTPEndpoint(url: "http://backend/records"))
        bare.namesDefaultPort = false
        #expect(bare.authority == "backend")
        _ = try await OneShotHTTPClient.send(.POST, to: bare, body: Array("{}".utf8), timeout: .seconds(30), via: via)
        let request = proxy.lastRequest
        #expect(request.hasPrefix("POST http://backend/records HTTP/1.1\r\n"))
        #expect(request.contains("Host: backend\r\n") && request.contains("Content-Length: 2\r\n"))
        #expect(request.hasSuffix("\r\n\r\n{}"))
    }

    @Test func aRefusedProxyIsNamedAsTheProxy() async throws {
        let port = try refusingPort()
        do {
            _ = try await OneShotHTTPClient.send(
                .GET, url: "http://backend/", timeout: .seconds(30), via: .init(host: "127.0.0.1", port: port))
            Issue.record("expected a connect failure")
        } catch let failure as OneShotHTTPClient.Failure {
            #expect(failure == .connectFailed(target: "127.0.0.1:\(port) (proxy for backend:80)", reason: "connection refused"))
        }
    }

    @Test func timesOutOnASilentServer() async throws {
        let server = try await CannedHTTPServer(.silent)
        defer { Task { await server.close() } }
        // `within` guards against a client that never times out (the test would hang); how long
        // the 300 ms took is not checked: under stress it has taken 22 s for this task to resume.
        await #expect(throws: OneShotHTTPClient.Failure.timedOut(after: .milliseconds(300))) {
            try await within(.seconds(120), "the client's own timeout") {
                try await OneShotHTTPClient.send(.GET, url: server.url, timeout: .milliseconds(300))
            }
        }
    }

    @Test func closedBeforeAnswerIsAnError() async throws {
        let server = try await CannedHTTPServer(.closeImmediately)
        defer { Task { await server.close() } }
        await #expect(throws: OneShotHTTPClient.Failure.self) {
            try await OneShotHTTPClient.send(.GET, url: server.url, timeout: .seconds(30))
        }
    }

    @Test func endpointParsing() throws {
        let plain = try #require(HTTPEndpoint(url: "http://collector/api/v2/spans"))
        #expect(plain.host == "collector" && plain.port == 80 && plain.path == "/api/v2/spans")
        #expect(plain.authority == "collector:80")
        #expect(HTTPEndpoint(url: "http://c:9411")?.path == "/")
        #expect(HTTPEndpoint(url: "HTTP://c:9411/x?y=1")?.path == "/x?y=1")
        let v6 = try #require(HTTPEndpoint(url: "http://[::1]:4318/v1/traces"))
        #expect(v6.host == "::1" && v6.port == 4318 && v6.authority == "[::1]:4318")
        #expect(HTTPEndpoint(url: "https://c/x") == nil)
    }
}

@Suite struct HTTPSpanExporterTests {
    let batch = EncodedSpanBatch(format: .zipkinJSON, spans: [sampleSpan(1)])

    func exporter(_ url: String, timeout: Duration = .seconds(5)) throws -> HTTPSpanExporter {
        try #require(HTTPSpanExporter(
            configuration: SpanExportTarget(kind: .zipkin, url: url), group: MultiThreadedEventLoopGroup.singleton, timeout: timeout))
    }

    @Test func postsTheBatchAndAccepts2xx() async throws {
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"))
        defer { Task { await server.close() } }
        #expect(try await exporter(server.url + "/api/v2/spans").export(batch) == .exported)
        let request = server.lastRequest
        #expect(request.hasPrefix("POST /api/v2/spans HTTP/1.1\r\n"))
        #expect(request.contains("Content-Type: application/json\r\n"))
        #expect(request.contains("User-Agent: meshtrace-sidecar\r\n"))
        #expect(request.contains("Connection: close\r\n"))
        #expect(request.hasSuffix("\r\n\r\n" + String(decoding: batch.body, as: UTF8.self)))
    }

    @Test func overloadIsRetryableWithRetryAfter() async throws {
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n"))
        defer { Task { await server.close() } }
        #expect(try await exporter(server.url + "/api/v2/spans").export(batch) == .retryable(reason: "collector answered 429", retryAfter: 2))

        let garbage = try await CannedHTTPServer(.answer("HTTP/1.1 503 Unavailable\r\nRetry-After: -1\r\nContent-Length: 0\r\n\r\n"))
        defer { Task { await garbage.close() } }
        #expect(try await exporter(garbage.url + "/api/v2/spans").export(batch) == .retryable(reason: "collector answered 503", retryAfter: nil))
    }

    @Test func otherStatusesAreRejectedWithABodyPrefix() async throws {
        let body = "bad spans: " + String(repeating: "y", count: 5000)
        let server = try await CannedHTTPServer(.answer("HTTP/1.1 400 Bad Request\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"))
        defer { Task { await server.close() } }
        let outcome = try await exporter(server.url + "/api/v2/spans").export(batch)
        #expect(outcome == .rejected(reason: "collector answered 400: " + String(body.prefix(300))))
    }

    @Test func connectionProblemsAreRetryable() async throws {
        let port = try refusingPort()
        guard case .retryable(_, nil) = try await exporter("http://127.0.0.1:\(port)/api/v2/spans").export(batch) else {
            Issue.record("a refused connection should be retried")
            return
        }
        let silent = try await CannedHTTPServer(.silent)
        defer { Task { await silent.close() } }
        #expect(try await exporter(silent.url + "/api/v2/spans", timeout: .milliseconds(200)).export(batch)
            == .retryable(reason: "export timed out", retryAfter: nil))
    }
}
