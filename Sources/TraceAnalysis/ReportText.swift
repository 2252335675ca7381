import TraceModel

extension AnalysisReport {
    /// What `meshtrace analyze --format text` prints: a verdict line, then each finding with
    /// its evidence and fix, worded for a person at a terminal.
    public func text(queryURL: String? = nil) -> String {
        var lines: [String] = []
        let minutes = Double(windowEndMs - windowStartMs) / 60_000
        let window = minutes >= 1 ? "\(Int(minutes.rounded())) min" : "\(Int(Double(windowEndMs - windowStartMs) / 1000)) s"
        lines.append("analysed \(traces) trace\(traces == 1 ? "" : "s") (\(spans) spans, \(services.count) service\(services.count == 1 ? "" : "s")) from the last \(window)\(truncated ? " (truncated: more spans than one analysis reads)" : "")")
        if findings.isEmpty {
            lines.append(traces == 0 ? "no problems found, but no complete traces were seen yet: send some traffic and run again" : "no problems found: trace context is propagated end to end")
            return lines.joined(separator: "\n") + "\n"
        }
        lines.append("\(findings.count) problem\(findings.count == 1 ? "" : "s") found:")
        for (i, f) in findings.enumerated() {
            lines.append("")
            lines.append("\(i + 1). [\(f.severity.rawValue)] \(f.kind.title) — \(f.service)")
            lines.append("   \(f.summary)")
            var evidence = "   evidence: \(f.evidence.count)"
            if let outOf = f.evidence.outOf { evidence += " of \(outOf)" }
            let details = f.evidence.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            if !details.isEmpty { evidence += "; " + details.joined(separator: "; ") }
            lines.append(evidence)
            if !f.evidence.traceIDs.isEmpty {
                lines.append("   traces: " + f.evidence.traceIDs.joined(separator: " "))
                if let queryURL, let first = f.evidence.traceIDs.first { lines.append("   open:   \(queryURL)/trace/\(first)") }
            }
            lines.append("   fix: \(f.fix)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
