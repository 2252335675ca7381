import TraceModel

/// Knobs for one analysis.
public struct AnalysisOptions: Sendable {
    /// A child may start this much before its parent (or end after it) before it counts as skew:
    /// timestamps are taken at slightly different points by different processes.
    public var clockSkewToleranceNanos: UInt64 = 1_000_000
    /// Example trace ids per finding.
    public var maxExamples = 5
    /// Only findings about this service (nil: all).
    public var service: String?

    public init(clockSkewToleranceNanos: UInt64 = 1_000_000, maxExamples: Int = 5, service: String? = nil) {
        self.clockSkewToleranceNanos = clockSkewToleranceNanos
        self.maxExamples = maxExamples
        self.service = service
    }
}

/// The propagation doctor: pure functions from stored spans to findings. Every rule looks only
/// at evidence in the spans themselves (parent links, kinds, times and the attributes our
/// sidecar records, see `PropagationAttributes`), so the same spans always give the same answer.
public enum TraceAnalyzer {
    /// Groups spans by trace id; each trace sorted by start time, traces by their first start.
    public static func traces(from spans: [Span]) -> [[Span]] {
        var byTrace: [TraceID: [Span]] = [:]
        for span in spans { byTrace[span.traceID, default: []].append(span) }
        return byTrace.values
            .map { $0.sorted { ($0.startTimeNanos, $0.spanID) < ($1.startTimeNanos, $1.spanID) } }
            .sorted { ($0.first?.startTimeNanos ?? 0, $0.first?.traceID ?? TraceID(high: 0, low: 0)) < ($1.first?.startTimeNanos ?? 0, $1.first?.traceID ?? TraceID(high: 0, low: 0)) }
    }

    public static func analyze(spans: [Span], options: AnalysisOptions = AnalysisOptions()) -> [Finding] {
        analyze(traces(from: spans), options: options)
    }

    public static func analyze(_ traces: [[Span]], options: AnalysisOptions = AnalysisOptions()) -> [Finding] {
        var acc = Accumulator(maxExamples: options.maxExamples)
        let stats = ServiceStats(traces)

        for trace in traces {
            guard let traceID = trace.first?.traceID.hex else { continue }
            var byID: [SpanID: Span] = [:]
            var serverChildren: Set<SpanID> = []  // parents that have a SERVER child
            var clientChildren: [SpanID: String] = [:]  // parents that have a CLIENT child, and its service
            for span in trace {
                if byID[span.spanID] == nil || span.kind == .client { byID[span.spanID] = span }
                if span.kind == .server, let parent = span.parentSpanID { serverChildren.insert(parent) }
                if span.kind == .client, let parent = span.parentSpanID { clientChildren[parent] = span.serviceName }
                // Zipkin's shared spans: the SERVER side reuses the CLIENT's id.
                if span.kind == .server, span.shared { serverChildren.insert(span.spanID) }
            }

            for span in trace {
                let parent = span.parentSpanID.flatMap { byID[$0] }

                // Headers that disagreed at a sidecar: the spans behind the losing formats hang elsewhere.
                if let disagreed = formats(span.attribute(PropagationAttributes.disagreed)), !disagreed.isEmpty {
                    let used = formats(span.attribute(PropagationAttributes.extracted))?.first { !disagreed.contains($0) } ?? "?"
                    acc.add(.conflictingContext, service: span.serviceName, key: span.kind == .server ? "in" : "out", trace: traceID,
                            details: ["used": used], lost: disagreed)
                }

                // Sampling flip 0 -> 1: this hop sampled a request whose caller had decided not to.
                if span.attribute(PropagationAttributes.upstreamSampled) == .string("false") || span.attribute(PropagationAttributes.upstreamSampled) == .bool(false) {
                    acc.add(.samplingFlip, service: span.serviceName, key: "up", trace: traceID)
                    continue
                }

                // Context dropped: a CLIENT span of a service that serves requests, with no parent.
                if span.kind == .client, span.parentSpanID == nil, stats.serverSpans[span.serviceName, default: 0] > 0 {
                    if stats.isDuringInbound(span) {
                        acc.add(.contextDropped, service: span.serviceName, key: "", trace: traceID)
                    }
                }

                // Orphans: the parent never arrived.
                if let parentID = span.parentSpanID, parent == nil, !(span.shared && byID[parentID] != nil) {
                    let caller = callerName(of: span) ?? "?"
                    acc.add(.orphanSpans, service: span.serviceName, key: caller, trace: traceID, details: ["caller": caller])
                }

                if let parent {
                    // Clock skew: a child outside its parent.
                    let tol = options.clockSkewToleranceNanos
                    var skew: UInt64 = 0
                    if span.startTimeNanos &+ tol < parent.startTimeNanos { skew = parent.startTimeNanos - span.startTimeNanos }
                    if parent.kind == .client, span.kind == .server, span.endTimeNanos > parent.endTimeNanos &+ tol {
                        skew = max(skew, span.endTimeNanos - parent.endTimeNanos)
                    }
                    if skew > 0 {
                        acc.add(.clockSkew, service: span.serviceName, key: parent.serviceName, trace: traceID,
                                details: ["parentService": parent.serviceName], maxMillis: Double(skew) / 1e6)
                    }

                    // Partial propagation: the app's outgoing call carried less than its incoming request.
                    if span.kind == .client, parent.kind == .server, parent.serviceName == span.serviceName, !isInferred(span) {
                        var lost: [String] = []
                        if let injected = formats(parent.attribute(PropagationAttributes.injected)),
                           let extracted = formats(span.attribute(PropagationAttributes.extracted)) {
                            for format in injected where !extracted.contains(format) { lost.append(format) }
                        }
                        if let state = parent.traceState, !state.isEmpty, (span.traceState ?? "").isEmpty { lost.append("tracestate") }
                        if let inID = requestID(parent), let outID = requestID(span), inID != outID { lost.append("x-request-id") }
                        acc.count(.partialPropagation, service: span.serviceName, key: "")
                        if !lost.isEmpty {
                            acc.add(.partialPropagation, service: span.serviceName, key: "", trace: traceID, lost: lost,
                                    kept: formats(span.attribute(PropagationAttributes.extracted)) ?? [])
                        }
                    }

                    // Uninstrumented caller: a SERVER span whose parent is not a CLIENT span of
                    // another service, i.e. the caller's call skipped its sidecar.
                    if span.kind == .server, parent.kind != .client, parent.serviceName != span.serviceName {
                        acc.add(.uninstrumentedHop, service: parent.serviceName, key: "server:" + span.serviceName, trace: traceID,
                                details: ["peer": span.serviceName, "side": "client"])
                    }
                }

                // CLIENT span with no SERVER partner. An in-process tracer's CLIENT span (a
                // SkyWalking agent's exit span) whose child is its own service's sidecar CLIENT span
                // has one further on.
                if span.kind == .client, !serverChildren.contains(span.spanID), clientChildren[span.spanID] != span.serviceName,
                   reachedUpstream(span) {
                    let peer = peerName(of: span) ?? "?"
                    if let peerRates = stats.samplingRates[peer], let rate = samplingRate(span), !peerRates.contains(rate), peerRates.contains(where: { $0 < rate }) {
                        // The peer reports spans, at a lower rate: it re-sampled a sampled request.
                        acc.add(.samplingFlip, service: peer, key: "down", trace: traceID, details: ["caller": span.serviceName])
                    } else {
                        acc.add(.uninstrumentedHop, service: peer, key: "client:" + span.serviceName, trace: traceID,
                                details: ["caller": span.serviceName, "side": "server"])
                    }
                }

                // A SERVER with no caller: a root SERVER span in a service that is otherwise
                // called from inside the mesh (it is not an edge).
                if span.kind == .server, span.parentSpanID == nil, stats.childServerSpans[span.serviceName, default: 0] > 0 {
                    acc.add(.uninstrumentedHop, service: span.serviceName, key: "root", trace: traceID, details: ["side": "client"])
                }
            }
        }

        var findings = acc.findings(stats: stats)
        if let only = options.service { findings = findings.filter { $0.service == only } }
        return findings.sorted {
            ($0.severity == .error ? 0 : 1, -$0.evidence.count, $0.kind.rawValue, $0.service)
                < ($1.severity == .error ? 0 : 1, -$1.evidence.count, $1.kind.rawValue, $1.service)
        }
    }

    // MARK: - Span helpers

    static func isInferred(_ span: Span) -> Bool {
        let v = span.attribute(PropagationAttributes.parentInferred)
        return v == .bool(true) || v == .string("true")
    }

    static func formats(_ value: AttributeValue?) -> [String]? {
        guard let value else { return nil }
        let text = value.description
        if text == "none" || text.isEmpty { return [] }
        return text.split(separator: ",").map { String($0) }
    }

    static func requestID(_ span: Span) -> String? {
        guard let v = span.attribute("guid:x-request-id")?.description, !v.isEmpty else { return nil }
        return v
    }

    static func samplingRate(_ span: Span) -> Double? {
        switch span.attribute("sampling.rate") {
        case .double(let d)?: return d
        case .int(let i)?: return Double(i)
        case .string(let s)?: return Double(s)
        default: return nil
        }
    }

    /// Who sent a SERVER span's request: the caller's sidecar tells ours (`downstream_cluster`).
    static func callerName(of span: Span) -> String? {
        if let v = span.attribute("downstream_cluster")?.description, !v.isEmpty, v != "-" { return v }
        if span.kind == .server, let name = span.remoteEndpoint?.serviceName, !name.isEmpty { return name }
        return nil
    }

    static func peerName(of span: Span) -> String? {
        if let v = span.attribute("peer.service")?.description, !v.isEmpty { return v }
        if let name = span.remoteEndpoint?.serviceName, !name.isEmpty { return name }
        return nil
    }

    /// False for calls the proxy answered itself (no route, connect failure, overflow): those
    /// never reached a server, so no SERVER span is expected.
    static func reachedUpstream(_ span: Span) -> Bool {
        if let flags = span.attribute("response_flags")?.description, flags != "-", !flags.isEmpty { return false }
        return true
    }
}

/// Per-service facts over the whole window, which single traces cannot tell.
struct ServiceStats {
    var serverSpans: [String: Int] = [:]
    /// SERVER spans with a parent: the service is called from inside the mesh.
    var childServerSpans: [String: Int] = [:]
    var samplingRates: [String: Set<Double>] = [:]
    /// Formats the service's inbound sidecar writes toward the app.
    var injected: [String: [String]] = [:]
    /// Per service, inbound SERVER intervals sorted by start, with the running max of ends.
    private var intervals: [String: (starts: [UInt64], maxEnds: [UInt64])] = [:]

    init(_ traces: [[Span]]) {
        var raw: [String: [(UInt64, UInt64)]] = [:]
        for trace in traces {
            for span in trace where span.kind == .server {
                serverSpans[span.serviceName, default: 0] += 1
                if span.parentSpanID != nil { childServerSpans[span.serviceName, default: 0] += 1 }
                if let rate = TraceAnalyzer.samplingRate(span) { samplingRates[span.serviceName, default: []].insert(rate) }
                if injected[span.serviceName] == nil, let f = TraceAnalyzer.formats(span.attribute(PropagationAttributes.injected)), !f.isEmpty {
                    injected[span.serviceName] = f
                }
                raw[span.serviceName, default: []].append((span.startTimeNanos, span.endTimeNanos))
            }
        }
        for (service, list) in raw {
            let sorted = list.sorted { $0.0 < $1.0 }
            var maxEnd: UInt64 = 0
            var maxEnds: [UInt64] = []
            maxEnds.reserveCapacity(sorted.count)
            for (_, end) in sorted {
                maxEnd = max(maxEnd, end)
                maxEnds.append(maxEnd)
            }
            intervals[service] = (sorted.map(\.0), maxEnds)
        }
    }

    /// Whether `span` lies within some inbound request of its own service: the evidence that
    /// the call was made while serving a request (and not by a background job).
    func isDuringInbound(_ span: Span) -> Bool {
        guard let (starts, maxEnds) = intervals[span.serviceName], !starts.isEmpty else { return false }
        // Last inbound request that started at or before the call.
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= span.startTimeNanos { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return false }
        return maxEnds[lo - 1] >= span.endTimeNanos
    }
}

/// Collects occurrences per (kind, service, key), then words them as findings.
struct Accumulator {
    struct Key: Hashable {
        var kind: FindingKind
        var service: String
        var key: String
    }

    struct Entry {
        var count = 0
        var candidates = 0
        var traceIDs: [String] = []
        var details: [String: String] = [:]
        var lost: [String: Int] = [:]
        var kept: Set<String> = []
        var maxMillis = 0.0
    }

    let maxExamples: Int
    var entries: [Key: Entry] = [:]
    var order: [Key] = []

    init(maxExamples: Int) { self.maxExamples = maxExamples }

    /// Counts a candidate (the denominator) without an occurrence.
    mutating func count(_ kind: FindingKind, service: String, key: String) {
        let k = Key(kind: kind, service: service, key: key)
        if entries[k] == nil { order.append(k) }
        entries[k, default: Entry()].candidates += 1
    }

    mutating func add(_ kind: FindingKind, service: String, key: String, trace: String, details: [String: String] = [:],
                      maxMillis: Double = 0, lost: [String] = [], kept: [String] = []) {
        let k = Key(kind: kind, service: service, key: key)
        if entries[k] == nil { order.append(k) }
        var e = entries[k, default: Entry()]
        e.count += 1
        if e.traceIDs.count < maxExamples, !e.traceIDs.contains(trace) { e.traceIDs.append(trace) }
        e.details.merge(details) { old, _ in old }
        e.maxMillis = max(e.maxMillis, maxMillis)
        for item in lost { e.lost[item, default: 0] += 1 }
        e.kept.formUnion(kept)
        entries[k] = e
    }

    func findings(stats: ServiceStats) -> [Finding] {
        order.compactMap { key -> Finding? in
            guard let e = entries[key], e.count > 0 else { return nil }
            return Wording.finding(key: key, entry: e, stats: stats)
        }
    }
}
