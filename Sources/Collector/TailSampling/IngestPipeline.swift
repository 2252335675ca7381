import Logging
import TraceExport
import TraceModel
import TraceStorage
import TraceWire

/// Where receivers hand spans: first to the collector that owns each trace, when several share
/// the work (`TraceRouting`), then to tail sampling here (which passes them to the ingest queue
/// when it is off). The answer to the sender waits for both.
final class IngestPipeline: Sendable {
    /// Set on forwarded requests: the owner takes them as its own and never forwards again, so
    /// two collectors whose peer lists disagree for a moment cannot bounce spans between them.
    static let forwardedHeader = "x-meshtrace-forwarded"

    let tail: TailSamplingService<ContinuousClock>
    let metrics: TailSamplingMetrics
    let logger: Logger
    let forwardTimeout: Duration

    init(tail: TailSamplingService<ContinuousClock>, metrics: TailSamplingMetrics, forwardTimeout: Duration = .seconds(10), logger: Logger) {
        self.tail = tail
        self.metrics = metrics
        self.logger = logger
        self.forwardTimeout = forwardTimeout
    }

    func submit(_ spans: [Span], forwarded: Bool) async throws(IngestError) {
        guard !forwarded, let routing = tail.routing, routing.peers.count > 1 else {
            try await tail.submit(spans)
            return
        }
        var byOwner: [String: [Span]] = [:]
        for span in spans { byOwner[routing.owner(of: span.traceID), default: []].append(span) }
        var local = byOwner.removeValue(forKey: routing.selfURL) ?? []
        let remote = byOwner
        let results = await withTaskGroup(of: (String, ForwardResult).self) { group in
            for (peer, part) in remote {
                group.addTask { (peer, await self.forward(part, to: peer)) }
            }
            var results: [(String, ForwardResult)] = []
            for await result in group { results.append(result) }
            return results
        }
        var busy = false
        for (peer, result) in results {
            switch result {
            case .forwarded:
                metrics.forwardedSpans.increment(by: Int64(remote[peer]?.count ?? 0))
            case .busy:
                busy = true
            case .unreachable(let reason):
                // Deciding here on part of a trace beats losing it or stalling every sender
                // while a peer is down; the split is counted.
                let part = remote[peer] ?? []
                metrics.forwardFallbackSpans.increment(by: Int64(part.count))
                logger.warning("peer collector unreachable; deciding its traces here", metadata: ["peer": "\(peer)", "spans": "\(part.count)", "reason": "\(reason)"])
                local += part
            }
        }
        // An owner that is full answers "retry later": so do we, for the whole request (what
        // was forwarded already is recognised as a repeat while it waits for its decision).
        if busy { throw .queueFull }
        try await tail.submit(local)
    }

    enum ForwardResult {
        case forwarded, busy
        case unreachable(String)
    }

    private func forward(_ spans: [Span], to peer: String) async -> ForwardResult {
        let body = OTLPProto.encode(spans)
        do {
            let response = try await OneShotHTTPClient.send(
                .POST, url: peer + "/v1/traces", body: body, contentType: "application/x-protobuf",
                headers: [(Self.forwardedHeader, "1"), ("User-Agent", "meshtrace-collector")], timeout: forwardTimeout,
                bodyLimit: .truncate(keeping: 300))
            switch response.status {
            case 200..<300: return .forwarded
            case 429, 503: return .busy
            default: return .unreachable("answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
            }
        } catch {
            return .unreachable("\(error)")
        }
    }
}
