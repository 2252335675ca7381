import NIOCore
import NIOHTTP1

/// A small response for the admin and metrics listeners.
struct SimpleResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String

    static func text(_ body: String, status: HTTPResponseStatus = .ok) -> SimpleResponse {
        SimpleResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }

    static func json(_ body: String, status: HTTPResponseStatus = .ok) -> SimpleResponse {
        SimpleResponse(status: status, contentType: "application/json", body: body)
    }
}

/// Answers each request with whatever `respond` returns; keep-alive; bodies ignored.
/// For the admin and metrics ports, which are not on the data path.
final class SimpleHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let respond: @Sendable (HTTPRequestHead) -> SimpleResponse
    private var head: HTTPRequestHead?

    init(respond: @escaping @Sendable (HTTPRequestHead) -> SimpleResponse) {
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            let response = respond(head)
            let keepAlive = head.isKeepAlive
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: response.contentType)
            headers.add(name: "content-length", value: String(response.body.utf8.count))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
            if head.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))), promise: nil)
            }
            let done = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
            if !keepAlive {
                done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
