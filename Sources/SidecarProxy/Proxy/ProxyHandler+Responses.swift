import Logging
import NIOCore
import NIOHTTP1
import TraceModel

/// Answers: local replies, a response complete, the exchange finished and the next one started.
extension ProxyHandler {
    /// A response the proxy makes itself (routing failure, upstream failure, timeout).
    func localReply(_ ex: Exchange, status: HTTPResponseStatus, flags: [String], reason: String) {
        guard let context, !ex.responseDone else { return }
        abandonUpstream(ex)
        ex.hop.statusCode = Int(status.code)
        ex.hop.responseFlags.append(contentsOf: flags)
        ex.hop.failureReason = reason
        if !ex.requestEnded {
            ex.discarding = true
            ex.buffered.removeAll()
            if ex.requestFraming != .none { keepAlive = false }
        }
        let body = reason + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if !flags.isEmpty { headers.add(name: "x-meshtrace-response-flags", value: flags.joined(separator: ",")) }
        headers.add(name: "x-request-id", value: ex.hop.requestID)
        if !keepAlive { headers.add(name: "connection", value: "close") }
        ex.responseStarted = true
        ex.hop.responseBytes += body.utf8.count
        runtime.stats.update { $0.localReplies += 1 }
        // A refused CONNECT answers like any request (a body, framed): only a 2xx opens a tunnel.
        let method = ex.upstreamHead.method.isCONNECT ? nil : ex.upstreamHead.method
        send(.head(HTTPResponseHead(version: ex.requestVersion, status: status, headers: headers)), method: method)
        send(.body(.byteBuffer(context.channel.allocator.buffer(string: body))), method: nil)
        responseComplete(ex, trailers: nil)
    }

    func responseComplete(_ ex: Exchange, trailers: HTTPHeaders?) {
        guard let context else { return }
        ex.responseDone = true
        // Telemetry (metrics, the span) is recorded after the flush, so the client has its
        // response before the proxy spends time on it. The span ends before the write, though:
        // a caller's CLIENT span can end as soon as the bytes arrive, and a SERVER span ending
        // after it (the thread preempted between write and record) reads as clock skew.
        ex.endMono = Clock.monoNanos()
        let mustClose = !keepAlive || (ex.discarding && ex.requestFraming != .none && !ex.requestEnded)
        if mustClose {
            let done = context.eventLoop.makePromise(of: Void.self)
            send(.end(trailers), method: nil, promise: done)
            context.flush()
            done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            finishRecord(ex)
            cleanup(ex)
            exchange = nil
            return
        }
        send(.end(trailers), method: nil)
        context.flush()
        finishRecord(ex)
        if !ex.requestEnded {
            // Upstream answered before the request body finished: forward nothing more of it.
            ex.discarding = true
            resumeDownstreamReads()
            return
        }
        exchangeFinished(ex)
    }

    /// Both directions are done: the connection can take the next request.
    func exchangeFinished(_ ex: Exchange) {
        cleanup(ex)
        exchange = nil
        guard let context else { return }
        if !keepAlive {
            context.close(promise: nil)
            return
        }
        processQueue()
        exchange?.connection?.handler.flush()  // parts replayed from the queue, outside any read
        if exchange == nil {
            timeouts?.phase(.idle)
        }
        resumeDownstreamReads()
    }

    func processQueue() {
        guard !processingQueue else { return }
        processingQueue = true
        defer { processingQueue = false }
        while let part = queued.first {
            if let ex = exchange {
                guard !ex.requestEnded else { break }
                queued.removeFirst()
                requestPart(part, ex)
            } else {
                queued.removeFirst()
                if case .head(let head) = part { startExchange(head) }
            }
        }
    }

    func finishRecord(_ ex: Exchange) {
        guard !ex.recorded else { return }
        ex.recorded = true
        releaseInference(ex)
        ex.hop.durationNanos = (ex.endMono ?? Clock.monoNanos()) &- ex.startMono
        let flags = ex.hop.responseFlags
        runtime.telemetry.record(ex.takeHop())
        runtime.stats.requestFinished(flags: flags)
    }

    /// The inbound request is answered: it can no longer be the cause of an outbound call.
    func releaseInference(_ ex: Exchange) {
        if let token = ex.inferenceToken {
            ex.inferenceToken = nil
            runtime.inference.finished(token)
        }
    }

    func cleanup(_ ex: Exchange) {
        releaseInference(ex)
        if let tunnel = ex.tunnel {
            ex.tunnel = nil
            tunnel.close()
        }
        ex.tunnelReport?.cancel()
        ex.tunnelReport = nil
        if ex.timerStarted { requestDeadline.clear() }
        if ex.tryStarted {
            ex.tryStarted = false
            tryDeadline.clear()
        }
        ex.retryTask?.cancel()
        ex.retryTask = nil
        releaseRetrySlot(ex)
        releaseEndpoint(ex)
        if let cluster = ex.cluster {
            ex.cluster = nil
            cluster.requestFinished()
        }
    }
}
