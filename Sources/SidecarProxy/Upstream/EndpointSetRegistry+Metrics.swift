/// Per-endpoint counters of multi-endpoint services, for the admin `/stats` text (Envoy's
/// `/clusters` style) and the Prometheus metrics endpoint.
extension EndpointSetRegistry {
    /// `endpoints.SERVICE.endpoint.HOST:PORT.FIELD: N` lines.
    public func statsLines() -> [String] {
        var lines: [String] = []
        for set in all {
            for s in set.stats {
                let name = "endpoints.\(set.service.name).endpoint.\(s.endpoint.address)"
                lines.append("\(name).rq_active: \(s.active)")
                lines.append("\(name).rq_total: \(s.total)")
                lines.append("\(name).rq_error: \(s.errors)")
                lines.append("\(name).ejections_total: \(s.ejections)")
                lines.append("\(name).ejected: \(s.ejected ? 1 : 0)")
            }
        }
        return lines
    }

    /// Prometheus exposition of the same counters, labelled by service and endpoint.
    public func prometheusText() -> String {
        let sets = all
        guard !sets.isEmpty else { return "" }
        let families: [(name: String, type: String, help: String, value: (EndpointSet.EndpointStats) -> Int)] = [
            ("meshtrace_endpoint_requests_total", "counter", "Attempts sent to the endpoint.", { $0.total }),
            ("meshtrace_endpoint_active_requests", "gauge", "Attempts in flight to the endpoint.", { $0.active }),
            ("meshtrace_endpoint_errors_total", "counter", "5xx answers and local failures (connect, reset, timeout) from the endpoint.", { $0.errors }),
            ("meshtrace_endpoint_ejections_total", "counter", "Times outlier detection ejected the endpoint.", { $0.ejections }),
            ("meshtrace_endpoint_ejected", "gauge", "1 while the endpoint is ejected.", { $0.ejected ? 1 : 0 }),
        ]
        let snapshots = sets.map { ($0.service.name, $0.stats) }
        var out = ""
        for family in families {
            out += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) \(family.type)\n"
            for (service, stats) in snapshots {
                for s in stats {
                    out += "\(family.name){destination_service=\"\(service)\",endpoint=\"\(s.endpoint.address)\"} \(family.value(s))\n"
                }
            }
        }
        return out
    }
}
