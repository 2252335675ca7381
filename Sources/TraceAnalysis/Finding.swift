import TraceModel

/// What kind of break the propagation doctor found. Raw values are the stable JSON/CLI names.
public enum FindingKind: String, Codable, Sendable, CaseIterable {
    /// A service receives requests but its outgoing calls start new root traces: the app does
    /// not copy the trace headers from the request it serves onto the calls it makes.
    case contextDropped = "context-dropped"
    /// A span names a parent that never arrived at the collector.
    case orphanSpans = "orphan-spans"
    /// The app forwards some trace headers but not all (only B3 or only W3C, or it loses
    /// tracestate or x-request-id).
    case partialPropagation = "partial-propagation"
    /// A child span lies outside its parent in time: the two hosts' clocks disagree.
    case clockSkew = "clock-skew"
    /// The sampling decision changes along a path, so part of the trace is missing.
    case samplingFlip = "sampling-flip"
    /// A hop with only one side reported: a CLIENT span with no SERVER partner, or a SERVER
    /// span whose caller did not go through a sidecar.
    case uninstrumentedHop = "uninstrumented-hop"
    /// Trace headers of several formats arrived naming different traces or parents (a stale
    /// `traceparent` copied beside a SkyWalking agent's fresh `sw8`, say): the sidecar used one
    /// (W3C first, then B3, then sw8) and the spans behind the others hang elsewhere.
    case conflictingContext = "conflicting-context"

    public var title: String {
        switch self {
        case .contextDropped: return "context dropped"
        case .orphanSpans: return "orphan spans"
        case .partialPropagation: return "partial propagation"
        case .clockSkew: return "clock skew"
        case .samplingFlip: return "sampling decision flips"
        case .uninstrumentedHop: return "uninstrumented hop"
        case .conflictingContext: return "conflicting trace headers"
        }
    }
}

public enum Severity: String, Codable, Sendable {
    case error
    case warning
}

/// Why a finding was made: how often, out of how many, and example traces to open.
public struct Evidence: Codable, Sendable, Equatable {
    /// Occurrences (spans or hops) that show the problem.
    public var count: Int
    /// What they are counted out of (e.g. the service's inbound requests), when meaningful.
    public var outOf: Int?
    /// Up to a handful of trace ids (hex) to open in the UI.
    public var traceIDs: [String]
    /// Finding-specific facts, e.g. `missing: b3multi`, `peer: database`, `maxSkewMs: 12.5`.
    public var details: [String: String]

    public init(count: Int, outOf: Int? = nil, traceIDs: [String], details: [String: String] = [:]) {
        self.count = count
        self.outOf = outOf
        self.traceIDs = traceIDs
        self.details = details
    }
}

/// One problem, for one service, with its evidence and the fix in one sentence.
public struct Finding: Codable, Sendable, Equatable {
    public var kind: FindingKind
    public var service: String
    public var severity: Severity
    /// One line a person reads: what is wrong, with numbers.
    public var summary: String
    public var evidence: Evidence
    /// One sentence: which headers to forward, where (or what else to change).
    public var fix: String

    public init(kind: FindingKind, service: String, severity: Severity, summary: String, evidence: Evidence, fix: String) {
        self.kind = kind
        self.service = service
        self.severity = severity
        self.summary = summary
        self.evidence = evidence
        self.fix = fix
    }
}

/// What `meshtrace analyze` and `GET /api/meshtrace/analysis` answer.
public struct AnalysisReport: Codable, Sendable, Equatable {
    public var windowStartMs: Int64
    public var windowEndMs: Int64
    /// Traces looked at (after leaving out ones still arriving).
    public var traces: Int
    public var spans: Int
    public var services: [String]
    /// True when the store held more spans than one analysis reads.
    public var truncated: Bool
    public var findings: [Finding]

    public init(windowStartMs: Int64, windowEndMs: Int64, traces: Int, spans: Int, services: [String], truncated: Bool, findings: [Finding]) {
        self.windowStartMs = windowStartMs
        self.windowEndMs = windowEndMs
        self.traces = traces
        self.spans = spans
        self.services = services
        self.truncated = truncated
        self.findings = findings
    }
}

/// Span attributes the sidecar records so the doctor can compare what was sent with what
/// arrived. Documented in README ("Propagation doctor").
public enum PropagationAttributes {
    /// On sidecar spans: the trace formats found in the incoming headers, comma-separated
    /// (`w3c,b3multi`), or `none`. On a CLIENT span that is what the app sent.
    public static let extracted = "meshtrace.propagation.extracted"
    /// On inbound SERVER spans: the formats the sidecar wrote toward the app.
    public static let injected = "meshtrace.propagation.injected"
    /// On sidecar spans: formats whose context disagreed with the one used (`sw8`), if any.
    public static let disagreed = "meshtrace.propagation.disagreed"
    /// On sidecar spans: the sampling decision the incoming headers carried (`true`/`false`),
    /// absent when they carried none.
    public static let upstreamSampled = "meshtrace.sampling.upstream"
    /// On CLIENT spans whose parent the sidecar inferred (`telemetry.inferParent`).
    public static let parentInferred = "meshtrace.parent_inferred"

    /// The headers an app must copy for each format.
    public static func headers(for format: String) -> [String] {
        switch format {
        case "w3c": return ["traceparent", "tracestate"]
        case "b3multi": return ["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"]
        case "b3single": return ["b3"]
        case "sw8": return ["sw8", "sw8-correlation", "sw8-x"]
        default: return []
        }
    }
}
