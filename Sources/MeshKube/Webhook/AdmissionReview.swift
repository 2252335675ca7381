import Foundation
import TraceWire

/// What the webhook answers one request body with.
public enum AdmissionAnswer: Sendable, Equatable {
    /// A body that is not JSON at all: 400 with the reason (the API server then applies the
    /// configuration's `failurePolicy: Ignore`).
    case badRequest(String)
    /// An `AdmissionReview` response (always 200).
    case review(JSONValue)
}

/// `admission.k8s.io/v1` reviews for pods, answered with the JSON patch that makes `inject`'s
/// pod. It fails open: anything it cannot use (a malformed review, a pod it cannot read, a kind
/// that is not a pod) is allowed unchanged, with a warning when something was wrong, never
/// refused: a broken injector must not stop a cluster from creating pods.
public struct AdmissionHandler: Sendable {
    public var injector: PodInjector

    public init(options: InjectOptions) {
        injector = PodInjector(options: options)
    }

    /// Nesting the injector reads; Kubernetes objects are far shallower, and a deeper body is
    /// refused before it costs stack.
    static let maxDepth = 64

    public func answer(_ body: [UInt8]) -> AdmissionAnswer {
        let review: JSONValue
        do {
            review = try JSONParser.parse(body, maxDepth: Self.maxDepth)
        } catch {
            return .badRequest("the body is not JSON: \(error)")
        }
        return .review(respond(to: review))
    }

    func respond(to review: JSONValue) -> JSONValue {
        let apiVersion = review["apiVersion"]?.stringValue ?? "admission.k8s.io/v1"
        let request = review["request"]
        let uid = request?["uid"]?.stringValue ?? ""
        func allow(warning: String? = nil, patch: [JSONValue]? = nil, warnings more: [String] = []) -> JSONValue {
            var response: [(key: String, value: JSONValue)] = [("uid", .string(uid)), ("allowed", .bool(true))]
            if let patch, !patch.isEmpty {
                response.append(("patchType", .string("JSONPatch")))
                response.append(("patch", .string(Data(JSONPatch.encode(patch)).base64EncodedString())))
            }
            let all = (warning.map { [$0] } ?? []) + more
            if !all.isEmpty { response.append(("warnings", .strings(all.map { "meshtrace: " + $0 }))) }
            return .object([
                ("apiVersion", .string(apiVersion)), ("kind", .string("AdmissionReview")), ("response", .object(response)),
            ])
        }

        guard review.isObject, review["kind"]?.stringValue == "AdmissionReview" else {
            return allow(warning: "not injected: the body is not an AdmissionReview (kind must be AdmissionReview)")
        }
        guard let request, request.isObject else { return allow(warning: "not injected: the review has no request") }
        guard !uid.isEmpty else { return allow(warning: "not injected: request.uid is missing") }
        let kind = request["kind"]
        let isPod = kind?["kind"]?.stringValue == "Pod" && (kind?["group"]?.stringValue ?? "") == "" && kind?["version"]?.stringValue == "v1"
        // Other kinds, and pod subresources (status, ephemeral containers), pass as they are.
        guard isPod, (request["subResource"]?.stringValue ?? "").isEmpty else { return allow() }
        guard request["operation"]?.stringValue == "CREATE" else { return allow() }
        guard let pod = request["object"], pod.isObject else {
            return allow(warning: "not injected: request.object is not a pod")
        }
        var warnings: [String] = []
        do {
            switch try injector.inject(pod, workloadName: WorkloadName.forPod(pod), path: "", warnings: &warnings) {
            case .skipped:
                return allow(warnings: warnings)
            case .injected(let injected):
                return allow(patch: JSONPatch.diff(from: pod, to: injected), warnings: warnings)
            }
        } catch {
            return allow(warning: "not injected: \(error.field.isEmpty ? "" : error.field + ": ")\(error.message)", warnings: warnings)
        }
    }
}
