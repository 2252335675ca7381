import TraceModel

/// Turns counted evidence into findings a person can act on: a one-line summary with numbers
/// and a one-sentence fix naming the headers and the place.
enum Wording {
    static let defaultFormats = ["w3c", "b3multi"]

    /// The headers for `formats`, plus x-request-id, as "a, b and c".
    static func headerList(_ formats: [String], requestID: Bool = true) -> String {
        var headers = formats.flatMap(PropagationAttributes.headers(for:))
        if requestID { headers.append("x-request-id") }
        return sentenceList(headers)
    }

    static func sentenceList(_ items: [String]) -> String {
        guard items.count > 1, let last = items.last else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " and " + last
    }

    static func millis(_ ms: Double) -> String {
        ms >= 10 ? String(Int(ms.rounded())) : String(Double(Int(ms * 10)) / 10)
    }

    static func finding(key: Accumulator.Key, entry e: Accumulator.Entry, stats: ServiceStats) -> Finding {
        let s = key.service
        var details = e.details
        switch key.kind {
        case .contextDropped:
            let formats = stats.injected[s] ?? defaultFormats
            let inbound = stats.serverSpans[s, default: 0]
            details["inboundRequests"] = String(inbound)
            details["headers"] = headerList(formats)
            return Finding(
                kind: .contextDropped, service: s, severity: .error,
                summary: "\(s) drops trace context: \(e.count) outgoing call\(e.count == 1 ? "" : "s") made while serving one of its \(inbound) inbound requests started new root traces",
                evidence: Evidence(count: e.count, outOf: inbound, traceIDs: e.traceIDs, details: details),
                fix: "In \(s), copy \(headerList(formats)) from each incoming request onto every outgoing request made while handling it (or set telemetry.inferParent: true / --infer-parent to let the sidecar link them when it safely can).")

        case .orphanSpans:
            let caller = details["caller"] ?? "?"
            let who = caller == "?" ? "its caller" : caller
            return Finding(
                kind: .orphanSpans, service: s, severity: .warning,
                summary: "\(e.count) span\(e.count == 1 ? "" : "s") of \(s) name a parent span (from \(who)) that never reached the collector",
                evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                fix: "Make \(who) report its spans to this collector (check its tracer or sidecar exporter endpoint and that it is not dropping spans), or stop it sending trace headers it does not report.")

        case .partialPropagation:
            let lost = e.lost.sorted { $0.key < $1.key }
            let lostFormats = lost.map(\.key).filter { !["tracestate", "x-request-id"].contains($0) }
            var headers = lostFormats.flatMap(PropagationAttributes.headers(for:))
            for extra in ["tracestate", "x-request-id"] where e.lost[extra] != nil && !headers.contains(extra) { headers.append(extra) }
            details["lost"] = lost.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            if !e.kept.isEmpty { details["forwarded"] = e.kept.sorted().joined(separator: ",") }
            let kept = e.kept.isEmpty ? "" : " (it forwards \(e.kept.sorted().joined(separator: ", ")) only)"
            return Finding(
                kind: .partialPropagation, service: s, severity: .warning,
                summary: "\(s) forwards trace headers only partly on \(e.count) of \(e.candidates) outgoing calls: lost \(lost.map(\.key).joined(separator: ", "))\(kept)",
                evidence: Evidence(count: e.count, outOf: e.candidates, traceIDs: e.traceIDs, details: details),
                fix: "In \(s), also copy \(sentenceList(headers)) from each incoming request onto its outgoing requests.")

        case .clockSkew:
            let parent = details["parentService"] ?? "?"
            details["maxSkewMs"] = millis(e.maxMillis)
            return Finding(
                kind: .clockSkew, service: s, severity: .warning,
                summary: "\(e.count) span\(e.count == 1 ? "" : "s") of \(s) lie outside their parent in \(parent), by up to \(millis(e.maxMillis)) ms",
                evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                fix: "Synchronise the clocks of the hosts running \(s) and \(parent) (NTP or chrony); timestamps are shown as reported.")

        case .samplingFlip:
            if key.key == "up" {
                return Finding(
                    kind: .samplingFlip, service: s, severity: .warning,
                    summary: "\(s) recorded \(e.count) span\(e.count == 1 ? "" : "s") for requests its caller had decided not to sample, so their parents are missing",
                    evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                    fix: "Make \(s) honour the incoming sampling flag (traceparent flags, x-b3-sampled or b3) instead of deciding again.")
            }
            let caller = details["caller"] ?? "?"
            return Finding(
                kind: .samplingFlip, service: s, severity: .warning,
                summary: "\(e.count) sampled call\(e.count == 1 ? "" : "s") from \(caller) to \(s) have no span from \(s), which reports other requests at a lower sampling rate",
                evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                fix: "Make \(s) honour the incoming sampling flag (traceparent flags, x-b3-sampled or b3) instead of re-sampling at its own rate.")

        case .conflictingContext:
            let lost = e.lost.keys.sorted()
            let used = details["used"] ?? "?"
            details["disagreed"] = lost.joined(separator: ",")
            let who = key.key == "in" ? "requests reached \(s)" : "outgoing calls from \(s) left"
            let fix = key.key == "in"
                ? "Make the callers of \(s) send one trace context in every format they send (drop stale \(sentenceList(lost.flatMap(PropagationAttributes.headers(for:)))) copied from elsewhere), or leave \(sentenceList(lost)) out of \(s)'s sidecar --propagation."
                : "In \(s), do not copy \(used == "w3c" ? "traceparent" : used) from the incoming request when the app's own tracer writes \(sentenceList(lost.flatMap(PropagationAttributes.headers(for:)))) (a SkyWalking agent does), or make the tracer write \(used) too."
            return Finding(
                kind: .conflictingContext, service: s, severity: .warning,
                summary: "\(e.count) \(who) with trace headers that disagree: \(lost.joined(separator: ", ")) named another trace or parent than \(used), which the sidecar used",
                evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                fix: fix)

        case .uninstrumentedHop:
            if key.key.hasPrefix("client:") {
                let caller = details["caller"] ?? "?"
                return Finding(
                    kind: .uninstrumentedHop, service: s, severity: .warning,
                    summary: "\(e.count) call\(e.count == 1 ? "" : "s") from \(caller) to \(s) have a CLIENT span but no SERVER span: \(s) has no sidecar or does not report to this collector",
                    evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                    fix: "Put \(s) behind a meshtrace sidecar (a service in mesh.yaml) or point its tracer at this collector, and have it forward \(headerList(defaultFormats)).")
            }
            if key.key.hasPrefix("server:") {
                let peer = details["peer"] ?? "?"
                return Finding(
                    kind: .uninstrumentedHop, service: s, severity: .warning,
                    summary: "\(e.count) request\(e.count == 1 ? "" : "s") from \(s) reached \(peer) without a CLIENT span: \(s) called \(peer) around its sidecar",
                    evidence: Evidence(count: e.count, traceIDs: e.traceIDs, details: details),
                    fix: "Send \(s)'s calls to \(peer) through its sidecar (HTTP_PROXY or \(String(peer.uppercased().map { $0 == "-" ? "_" : $0 }))_URL), not straight to \(peer).")
            }
            let inbound = stats.serverSpans[s, default: 0]
            return Finding(
                kind: .uninstrumentedHop, service: s, severity: .warning,
                summary: "\(e.count) of \(inbound) requests reached \(s) with no trace context and no caller span, though \(s) is otherwise called from inside the mesh",
                evidence: Evidence(count: e.count, outOf: inbound, traceIDs: e.traceIDs, details: details),
                fix: "Find the callers of \(s) that are not in the mesh and send their calls through a sidecar, or make them forward \(headerList(defaultFormats)).")
        }
    }
}
