import TailSampling
import Yams

/// `--sampling-policy FILE`: the OpenTelemetry `tail_sampling` processor's settings, with its
/// key names (`decision_wait`, `num_traces`, `decision_cache`, `policies`, …), plus
/// meshtrace's own `max_buffered_spans`, `decide_when_complete` and `routing` (how several
/// collectors agree on which one decides a trace). README "Tail-based sampling" has examples.
public struct SamplingPolicyFile: Sendable, Equatable {
    public var configuration: TailSamplingConfiguration
    /// Several collectors: this one and its peers, each deciding the traces whose ids hash to it.
    public var routing: TraceRouting?
    /// `drop_pending_traces_on_shutdown`: on stop, forget undecided traces instead of
    /// deciding them with what arrived.
    public var dropPendingOnShutdown = false

    public init(configuration: TailSamplingConfiguration, routing: TraceRouting? = nil) {
        self.configuration = configuration
        self.routing = routing
    }

    static let topLevelKeys = [
        "decision_wait", "num_traces", "expected_new_traces_per_sec", "decision_cache", "sample_on_first_match",
        "drop_pending_traces_on_shutdown", "policies", "max_buffered_spans", "decide_when_complete", "routing",
    ]

    /// Reads and checks a whole file; every policy is built (regexes compiled) so a file that
    /// parses is one the sampler accepts.
    public static func parse(_ text: String, fileName: String) throws(PolicyFileError) -> SamplingPolicyFile {
        let reader = PolicyYAMLReader(fileName: fileName)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw reader.fail(nil, "", "the file is empty", hint: "give at least `policies:`; README \"Tail-based sampling\" has an example")
            }
            root = node
        } catch let error as PolicyFileError {
            throw error
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                throw PolicyFileError(file: fileName, line: mark.line, column: mark.column, field: "", message: "YAML syntax error: \(problem)",
                                      hint: "check indentation (spaces, not tabs) and that every key ends with ':'")
            default:
                throw reader.fail(nil, "", "YAML error: \(error)")
            }
        } catch {
            throw reader.fail(nil, "", "cannot read YAML: \(error)")
        }
        var file = SamplingPolicyFile(configuration: TailSamplingConfiguration())
        var sawPolicies = false
        for (key, _, value) in try reader.mapping(root, "", allowed: topLevelKeys) {
            switch key {
            case "decision_wait": file.configuration.decisionWait = try reader.duration(value, key, atLeast: .milliseconds(1))
            case "num_traces": file.configuration.numTraces = Int(try reader.int(value, key, range: 1...100_000_000))
            case "expected_new_traces_per_sec": _ = try reader.int(value, key, range: 0...Int64.max)  // a sizing hint upstream; nothing to size here
            case "sample_on_first_match": file.configuration.sampleOnFirstMatch = try reader.bool(value, key)
            case "drop_pending_traces_on_shutdown": file.dropPendingOnShutdown = try reader.bool(value, key)
            case "max_buffered_spans": file.configuration.maxBufferedSpans = Int(try reader.int(value, key, range: 1...1_000_000_000))
            case "decide_when_complete": file.configuration.decideWhenComplete = try reader.bool(value, key)
            case "decision_cache":
                for (k, _, v) in try reader.mapping(value, key, allowed: ["sampled_cache_size", "non_sampled_cache_size"]) {
                    let size = Int(try reader.int(v, "\(key).\(k)", range: 0...100_000_000))
                    if k == "sampled_cache_size" { file.configuration.sampledCacheSize = size } else { file.configuration.nonSampledCacheSize = size }
                }
            case "policies":
                sawPolicies = true
                file.configuration.policies = try PolicyReader(reader: reader).policies(value, "policies")
            case "routing":
                file.routing = try TraceRouting.parse(value, reader: reader)
            default: break
            }
        }
        guard sawPolicies, !file.configuration.policies.isEmpty else {
            throw reader.fail(root, "policies", "no policies: every trace would be dropped",
                              hint: "add at least one, e.g. `- {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}`")
        }
        do {
            _ = try TailSampler<ContinuousClock.Instant>(configuration: file.configuration)
        } catch {
            throw reader.fail(nil, "policies", error.description)
        }
        return file
    }
}
