import Synchronization
import TraceModel

/// Parent inference for apps that do not forward trace headers (`inferParent`, off by default).
///
/// One per service instance, shared by its inbound listener and every outbound/egress listener
/// of the same instance (the app may call out through any of them), across event loops.
/// The inbound listener registers each request while it is in flight; an outbound request that
/// arrives with no trace context asks `infer()`. Exactly one inbound request in flight means the
/// outbound call can only have been made while serving that one (the inbound exchange ends only
/// after the app answered it), so it becomes that request's child. With two or more in flight
/// the caller is unknowable from here: never guess, count it as ambiguous and start a new root.
/// The remaining blind spot is work the app does on its own (timers, background jobs) while
/// exactly one request is in flight; that is why this is opt-in.
public final class ParentInference: Sendable {
    public struct Counts: Sendable, Equatable {
        /// Outbound requests linked to the single in-flight inbound request.
        public var inferred = 0
        /// Outbound requests left as new roots because several inbound requests were in flight.
        public var ambiguous = 0
        /// Outbound requests left as new roots because no inbound request was in flight.
        public var none = 0
    }

    /// What the inbound side knows about one in-flight request: the SERVER span's context
    /// (its span id becomes the parent) and its request id.
    public struct Inbound: Sendable, Equatable {
        public var context: TraceContext
        public var sampled: Bool
        public var requestID: String
    }

    public enum Decision: Sendable, Equatable {
        case inferred(Inbound)
        case ambiguous
        case none
    }

    private struct State {
        var nextToken = 0
        var inFlight: [Int: Inbound] = [:]
        var counts = Counts()
    }

    private let state = Mutex(State())

    public init() {}

    /// Registers an inbound request; hand the token back to `finished` exactly once.
    func started(_ inbound: Inbound) -> Int {
        state.withLock { s in
            s.nextToken &+= 1
            s.inFlight[s.nextToken] = inbound
            return s.nextToken
        }
    }

    func finished(_ token: Int) {
        state.withLock { s in _ = s.inFlight.removeValue(forKey: token) }
    }

    /// Decides for one outbound request without context, and counts the outcome.
    func infer() -> Decision {
        state.withLock { s in
            switch s.inFlight.count {
            case 0:
                s.counts.none += 1
                return .none
            case 1:
                s.counts.inferred += 1
                // Safe: count == 1, so `first` is the one.
                return s.inFlight.first.map { .inferred($0.value) } ?? .none
            default:
                s.counts.ambiguous += 1
                return .ambiguous
            }
        }
    }

    public var counts: Counts { state.withLock { $0.counts } }
    public var inFlightCount: Int { state.withLock { $0.inFlight.count } }

    /// Prometheus text for `/stats/prometheus`.
    public func prometheusText(service: String) -> String {
        let c = counts
        let label = "service=\"\(service.replacingBackslashAndQuotes)\""
        return """
            # HELP meshtrace_sidecar_parent_inference_total Outbound requests without trace context, by what parent inference did with them.
            # TYPE meshtrace_sidecar_parent_inference_total counter
            meshtrace_sidecar_parent_inference_total{\(label),result="inferred"} \(c.inferred)
            meshtrace_sidecar_parent_inference_total{\(label),result="ambiguous"} \(c.ambiguous)
            meshtrace_sidecar_parent_inference_total{\(label),result="none"} \(c.none)

            """
    }
}

extension String {
    fileprivate var replacingBackslashAndQuotes: String {
        var out = ""
        for ch in self {
            if ch == "\\" || ch == "\"" { out.append("\\") }
            out.append(ch)
        }
        return out
    }
}
