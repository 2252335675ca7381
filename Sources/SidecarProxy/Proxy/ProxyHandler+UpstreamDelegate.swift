import Logging
import NIOCore
import NIOHTTP1
import TraceModel

/// What the upstream connection reports: the response, its end, writability, a close.
extension ProxyHandler {
    var downstreamWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamReceived(_ part: UpstreamResponsePart, from connection: UpstreamConnection) {
        guard let ex = exchange, ex.connection === connection, let context else { return }
        switch part {
        case .head(let response):
            ex.upstreamKeepAlive = connection.handler.responseKeepAlive
            recordOutcome(ex, .response(Int(response.status.code)))
            if retriesStatus(Int(response.status.code), ex) {
                ex.discardingResponse = true
                return
            }
            ex.responseStarted = true
            if ex.tryStarted {
                ex.tryStarted = false
                tryDeadline.clear()
            }
            ex.hop.statusCode = Int(response.status.code)
            // The upstream's fields go out as the bytes they came in (hop-by-hop ones already
            // left out); only what this hop adds is built here.
            var extra = HTTPHeaders()
            if ex.requestVersion.minor == 0, response.contentLength == nil {
                keepAlive = false  // an HTTP/1.0 client learns the body's end from the close
            }
            if !keepAlive {
                extra.add(name: "connection", value: "close")
            } else if ex.requestVersion.minor == 0 {
                extra.add(name: "connection", value: "keep-alive")
            }
            writer.writeForwarded(
                response, version: ex.requestVersion, extra: extra, requestMethod: ex.upstreamHead.method,
                allocator: context.channel.allocator, promise: nil
            ) { bytes, promise in
                context.write(wrapOutboundOut(bytes), promise: promise)
            }
        case .body(let buffer):
            if ex.discardingResponse { return }
            ex.hop.responseBytes += buffer.readableBytes
            send(.body(.byteBuffer(buffer)), method: nil)
        case .end(let trailers):
            ex.connection = nil
            let reusable = ex.upstreamKeepAlive && ex.requestFullySent
            ex.pool?.release(connection, reusable: reusable, maxIdle: ex.snapshot.config.maxIdlePerUpstream)
            if ex.discardingResponse {
                // The dropped response is over: the request goes out again.
                ex.discardingResponse = false
                resend(ex)
                return
            }
            responseComplete(ex, trailers: trailers)
        }
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard exchange?.connection === connection else { return }
        resumeDownstreamReads()
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: Error?) {
        guard let ex = exchange, ex.connection === connection else { return }
        ex.connection = nil
        ex.discardingResponse = false
        if !ex.responseStarted {
            // A reused keep-alive connection the upstream had already closed: try once more on a
            // fresh one if nothing of the body was streamed yet (Envoy's reset-before-request).
            if connection.uses > 1, !ex.retriedStale, ex.hop.requestBytes == 0 {
                ex.retriedStale = true
                ex.freshConnection = true
                ex.buffered = ex.requestEnded ? [.end(nil)] : []
                ex.requestFullySent = false
                acquireConnection(ex)
                return
            }
            let protocolError = error is HTTPWireError
            recordOutcome(ex, .localFailure)
            localReply(
                ex, status: .serviceUnavailable, flags: [protocolError ? "UPE" : "UC"],
                reason: protocolError
                    ? "upstream protocol error: \(error.map { "\($0)" } ?? "")"
                    : "upstream connection termination before response headers")
        } else {
            ex.hop.responseFlags.append(error is HTTPWireError ? "UPE" : "UC")
            ex.hop.failureReason = "upstream connection closed mid-response"
            finishRecord(ex)
            ex.responseDone = true
            context?.close(promise: nil)
        }
    }
}
