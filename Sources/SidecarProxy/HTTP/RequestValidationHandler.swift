import NIOCore
import NIOHTTP1

/// Sits right after the HTTP decoder. Refuses request heads that break framing rules (smuggling:
/// Content-Length with Transfer-Encoding, duplicate or invalid Content-Length, …) with 400, and
/// header blocks over the limit with 431, then closes the connection: once framing is in doubt
/// nothing after it on the connection can be trusted. Parser errors get the same answers.
final class RequestValidationHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let maxHeaderBytes: Int
    private var rejected = false
    /// Whether a response has started on the connection (then a 400 can no longer be written).
    /// Asked of the proxy rather than tracked by intercepting every outbound write.
    var responseInProgress: () -> Bool = { false }
    /// Called with each rejection (for stats and logs).
    private let onReject: (@Sendable (RequestRejection) -> Void)?

    init(maxHeaderBytes: Int, onReject: (@Sendable (RequestRejection) -> Void)? = nil) {
        self.maxHeaderBytes = maxHeaderBytes
        self.onReject = onReject
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if rejected { return }
        if case .head(let head) = unwrapInboundIn(data), let problem = RequestRules.check(head, maxHeaderBytes: maxHeaderBytes) {
            reject(context: context, problem)
            return
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError, !rejected {
            let problem: RequestRejection
            switch parserError {
            case .headerOverflow: problem = .headersTooLarge
            default: problem = .badRequest("malformed request: \(parserError)")
            }
            // Answer first (the decoder closes the connection right after this returns), then
            // let the proxy see it (it marks an in-flight exchange DPE).
            reject(context: context, problem)
            context.fireErrorCaught(error)
            return
        }
        context.fireErrorCaught(error)
    }

    private func reject(context: ChannelHandlerContext, _ problem: RequestRejection) {
        rejected = true
        onReject?(problem)
        guard !responseInProgress() else {
            context.close(promise: nil)
            return
        }
        let body = problem.reason + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: problem.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
