import MeshtraceTesting
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A tiny HTTP server that records every request head it receives (request line and headers,
/// exactly as sent) and answers with a canned response. It stands in for an upstream service
/// or for the sidecar's forward proxy.
final class RecordingServer: Sendable {
    struct Received: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    /// Shared with the connection handlers, which run on NIO's threads.
    final class Store: Sendable {
        let requests = Mutex<[Received]>([])
    }

    let port: Int
    private let channel: any Channel
    private let store: Store

    var recorded: [Received] { store.requests.withLock { $0 } }

    init(status: Int = 200, body: String) async throws {
        let store = Store()
        let responseBody = body
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(status: status, body: responseBody, onRequest: { request in
                        store.requests.withLock { $0.append(request) }
                    }))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
        self.store = store
    }

    func close() async {
        try? await channel.close()
    }

    /// Polls until a request has arrived or the deadline passes (requests arrive on NIO's threads).
    func waitForRequest(timeout: Duration = .seconds(60)) async -> Received? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let first = recorded.first { return first }
            // A sleep, not a yield: a yielding loop keeps one of the few cooperative threads
            // busy, and a starved pool then misses the deadline under load.
            try? await Task.sleep(for: .milliseconds(2))
        }
        return recorded.first
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let status: Int
        let body: String
        let onRequest: @Sendable (Received) -> Void

        init(status: Int, body: String, onRequest: @escaping @Sendable (Received) -> Void) {
            self.status = status
            self.body = body
            self.onRequest = onRequest
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                onRequest(Received(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }))
            case .body:
                break
            case .end:
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(body.utf8.count))
                headers.add(name: "Connection", value: "close")
                let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                // Close only after the response is out; `context` is used on its own event loop.
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
            }
        }
    }
}
