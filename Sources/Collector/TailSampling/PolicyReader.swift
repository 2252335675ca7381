import TailSampling
import Yams

/// Reads `policies:` entries as the OpenTelemetry processor's config has them:
/// `{name, type, <type>: {...}}`, with `and: {and_sub_policy: [...]}`,
/// `drop: {drop_sub_policy: [...]}` and `composite: {max_total_spans_per_second, policy_order,
/// composite_sub_policy, rate_allocation}`.
struct PolicyReader {
    let reader: PolicyYAMLReader

    static let supported = [
        "always_sample", "latency", "numeric_attribute", "string_attribute", "status_code", "probabilistic", "rate_limiting",
        "and", "drop", "composite",
    ]
    /// Types the OpenTelemetry processor has and meshtrace does not (yet): named in the error.
    static let unsupported = ["boolean_attribute", "span_count", "trace_state", "trace_flags", "bytes_limiting", "ottl_condition"]

    func policies(_ node: Node, _ field: String) throws(PolicyFileError) -> [SamplingPolicy] {
        guard let items = node.sequence else { throw reader.fail(node, field, "expected a list of policies, got \(reader.describe(node))") }
        var out: [SamplingPolicy] = []
        var names = Set<String>()
        for (i, item) in items.enumerated() {
            let policy = try self.policy(item, "\(field)[\(i)]")
            guard names.insert(policy.name).inserted else {
                throw reader.fail(item, "\(field)[\(i)].name", "the name '\(policy.name)' is used twice", hint: "names label metrics and composite's policy_order")
            }
            out.append(policy)
        }
        return out
    }

    func policy(_ node: Node, _ field: String) throws(PolicyFileError) -> SamplingPolicy {
        guard let map = node.mapping else { throw reader.fail(node, field, "expected a policy {name, type, …}, got \(reader.describe(node))") }
        guard let typeNode = map["type"] else {
            throw reader.fail(node, "\(field).type", "missing", hint: "one of \(Self.supported.joined(separator: ", "))")
        }
        let type = try reader.string(typeNode, "\(field).type")
        guard Self.supported.contains(type) else {
            let why = Self.unsupported.contains(type) ? "is an OpenTelemetry policy meshtrace does not support yet" : "is not a policy type"
            throw reader.fail(typeNode, "\(field).type", "'\(type)' \(why)", hint: "use one of \(Self.supported.joined(separator: ", "))")
        }
        let entries = try reader.mapping(node, field, allowed: type == "always_sample" ? ["name", "type"] : ["name", "type", type])
        guard let nameNode = map["name"] else { throw reader.fail(node, "\(field).name", "missing: every policy needs a name") }
        let name = try reader.string(nameNode, "\(field).name")
        guard !name.isEmpty else { throw reader.fail(nameNode, "\(field).name", "must not be empty") }
        let body = entries.first { $0.key == type }?.value
        let path = "\(field).\(type)"
        if type != "always_sample", body == nil {
            throw reader.fail(node, path, "missing: a '\(type)' policy takes its settings under '\(type):'")
        }
        return SamplingPolicy(name: name, rule: try rule(type, body, path))
    }

    private func rule(_ type: String, _ body: Node?, _ path: String) throws(PolicyFileError) -> SamplingPolicy.Rule {
        guard let body else { return .alwaysSample }
        switch type {
        case "latency":
            var threshold: Int64?
            var upper: Int64?
            for (k, _, v) in try reader.mapping(body, path, allowed: ["threshold_ms", "upper_threshold_ms"]) {
                let value = try reader.int(v, "\(path).\(k)", range: 0...Int64.max / 1_000_000)
                if k == "threshold_ms" { threshold = value } else { upper = value }
            }
            guard let threshold else { throw reader.fail(body, "\(path).threshold_ms", "missing") }
            if let upper, upper != 0, upper <= threshold {
                throw reader.fail(body, "\(path).upper_threshold_ms", "must be above threshold_ms (\(threshold)), got \(upper)")
            }
            return .latency(thresholdMs: threshold, upperThresholdMs: upper)
        case "numeric_attribute":
            var key: String?
            var minValue: Int64?
            var maxValue: Int64?
            var invert = false
            for (k, _, v) in try reader.mapping(body, path, allowed: ["key", "min_value", "max_value", "invert_match"]) {
                switch k {
                case "key": key = try reader.string(v, "\(path).key")
                case "min_value": minValue = try reader.int(v, "\(path).min_value", range: .min ... .max)
                case "max_value": maxValue = try reader.int(v, "\(path).max_value", range: .min ... .max)
                default: invert = try reader.bool(v, "\(path).invert_match")
                }
            }
            guard let key, !key.isEmpty else { throw reader.fail(body, "\(path).key", "missing") }
            guard minValue != nil || maxValue != nil else { throw reader.fail(body, path, "give min_value, max_value or both") }
            if let minValue, let maxValue, maxValue < minValue {
                throw reader.fail(body, "\(path).max_value", "must be at least min_value (\(minValue)), got \(maxValue)")
            }
            return .numericAttribute(key: key, minValue: minValue, maxValue: maxValue, invertMatch: invert)
        case "string_attribute":
            var key: String?
            var values: [String] = []
            var valuesNode: Node?
            var regex = false
            var invert = false
            for (k, _, v) in try reader.mapping(body, path, allowed: ["key", "values", "enabled_regex_matching", "cache_max_size", "invert_match"]) {
                switch k {
                case "key": key = try reader.string(v, "\(path).key")
                case "values":
                    values = try reader.strings(v, "\(path).values")
                    valuesNode = v
                case "enabled_regex_matching": regex = try reader.bool(v, "\(path).enabled_regex_matching")
                case "cache_max_size": _ = try reader.int(v, "\(path).cache_max_size", range: 0...Int64(Int32.max))  // a Go-side cache; matching here needs none
                default: invert = try reader.bool(v, "\(path).invert_match")
                }
            }
            guard let key, !key.isEmpty else { throw reader.fail(body, "\(path).key", "missing") }
            guard !values.isEmpty else { throw reader.fail(valuesNode ?? body, "\(path).values", "give at least one value") }
            if regex {
                for (i, value) in values.enumerated() {
                    do {
                        _ = try Regex(value)
                    } catch {
                        throw reader.fail(valuesNode?.sequence?[i] ?? body, "\(path).values[\(i)]", "'\(value)' is not a regular expression: \(error)")
                    }
                }
            }
            return .stringAttribute(key: key, values: values, regex: regex, invertMatch: invert)
        case "status_code":
            var codes: [SamplingPolicy.StatusCodeName] = []
            for (k, _, v) in try reader.mapping(body, path, allowed: ["status_codes"]) {
                for (i, text) in try reader.strings(v, "\(path).\(k)").enumerated() {
                    guard let code = SamplingPolicy.StatusCodeName(rawValue: text) else {
                        throw reader.fail(v.sequence?[i] ?? v, "\(path).\(k)[\(i)]", "'\(text)' is not a status code", hint: "use OK, ERROR or UNSET")
                    }
                    codes.append(code)
                }
            }
            guard !codes.isEmpty else { throw reader.fail(body, "\(path).status_codes", "give at least one of OK, ERROR, UNSET") }
            return .statusCode(codes)
        case "probabilistic":
            var percentage: Double?
            var salt = ""
            for (k, _, v) in try reader.mapping(body, path, allowed: ["sampling_percentage", "hash_salt"]) {
                if k == "hash_salt" { salt = try reader.string(v, "\(path).hash_salt") } else {
                    percentage = try reader.double(v, "\(path).sampling_percentage", range: 0...100)
                }
            }
            guard let percentage else { throw reader.fail(body, "\(path).sampling_percentage", "missing") }
            return .probabilistic(samplingPercentage: percentage, hashSalt: salt)
        case "rate_limiting":
            var rate: Int64?
            for (_, _, v) in try reader.mapping(body, path, allowed: ["spans_per_second"]) {
                rate = try reader.int(v, "\(path).spans_per_second", range: 1...Int64(Int32.max))
            }
            guard let rate else { throw reader.fail(body, "\(path).spans_per_second", "missing") }
            return .rateLimiting(spansPerSecond: rate)
        case "and":
            return .and(try subPolicies(body, path, key: "and_sub_policy"))
        case "drop":
            return .drop(try subPolicies(body, path, key: "drop_sub_policy"))
        case "composite":
            return .composite(try composite(body, path))
        default:
            return .alwaysSample
        }
    }

    private func subPolicies(_ body: Node, _ path: String, key: String) throws(PolicyFileError) -> [SamplingPolicy] {
        var subs: [SamplingPolicy] = []
        for (_, _, v) in try reader.mapping(body, path, allowed: [key]) { subs = try policies(v, "\(path).\(key)") }
        guard !subs.isEmpty else { throw reader.fail(body, "\(path).\(key)", "give at least one sub-policy") }
        return subs
    }

    private func composite(_ body: Node, _ path: String) throws(PolicyFileError) -> SamplingPolicy.Composite {
        var total: Int64?
        var order: [String] = []
        var orderNode: Node?
        var subs: [SamplingPolicy] = []
        var allocation: [String: Int64] = [:]
        let keys = ["max_total_spans_per_second", "policy_order", "composite_sub_policy", "rate_allocation"]
        for (k, _, v) in try reader.mapping(body, path, allowed: keys) {
            switch k {
            case "max_total_spans_per_second": total = try reader.int(v, "\(path).\(k)", range: 1...Int64(Int32.max))
            case "policy_order":
                order = try reader.strings(v, "\(path).\(k)")
                orderNode = v
            case "composite_sub_policy": subs = try policies(v, "\(path).\(k)")
            default:
                guard let items = v.sequence else { throw reader.fail(v, "\(path).\(k)", "expected a list of {policy, percent}") }
                for (i, item) in items.enumerated() {
                    var policy: String?
                    var percent: Int64 = 0
                    for (ik, _, iv) in try reader.mapping(item, "\(path).\(k)[\(i)]", allowed: ["policy", "percent"]) {
                        if ik == "policy" { policy = try reader.string(iv, "\(path).\(k)[\(i)].policy") } else {
                            percent = try reader.int(iv, "\(path).\(k)[\(i)].percent", range: 0...100)
                        }
                    }
                    guard let policy else { throw reader.fail(item, "\(path).\(k)[\(i)].policy", "missing") }
                    allocation[policy] = percent
                }
            }
        }
        guard let total else { throw reader.fail(body, "\(path).max_total_spans_per_second", "missing") }
        guard !subs.isEmpty else { throw reader.fail(body, "\(path).composite_sub_policy", "give at least one sub-policy") }
        let names = Set(subs.map(\.name))
        for (i, name) in order.enumerated() where !names.contains(name) {
            throw reader.fail(orderNode?.sequence?[i] ?? body, "\(path).policy_order[\(i)]", "'\(name)' is not one of composite_sub_policy's names")
        }
        if !order.isEmpty, Set(order).count != order.count || Set(order) != names {
            throw reader.fail(orderNode ?? body, "\(path).policy_order", "must name every composite_sub_policy once")
        }
        for name in allocation.keys where !names.contains(name) {
            throw reader.fail(body, "\(path).rate_allocation", "'\(name)' is not one of composite_sub_policy's names")
        }
        return SamplingPolicy.Composite(maxTotalSpansPerSecond: total, policyOrder: order, subPolicies: subs, rateAllocation: allocation)
    }
}
