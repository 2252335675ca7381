import Foundation
import Testing
import TraceWire

@testable import MeshKube

@Suite struct AdmissionTests {
    let handler = AdmissionHandler(options: InjectOptions())

    func review(_ request: String) -> [UInt8] {
        Array("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":\(request)}".utf8)
    }

    func response(_ body: [UInt8]) throws -> JSONValue {
        guard case .review(let r) = handler.answer(body) else { Issue.record("expected a review"); return .null }
        return try #require(r["response"])
    }

    static let pod = """
        {"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
         "operation":"CREATE","uid":"u-1","namespace":"shop",
         "object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-7d9f8-","labels":{"app":"web","pod-template-hash":"7d9f8"},
           "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8","uid":"r","controller":true}]},
           "spec":{"containers":[{"name":"web","image":"x"}]}}}
        """

    @Test func podGetsAPatchThatReplaysInjection() throws {
        let r = try response(review(Self.pod))
        #expect(r["uid"] == .string("u-1"))
        #expect(r["allowed"] == .bool(true))
        #expect(r["patchType"] == .string("JSONPatch"))
        let patch = try JSONParser.parse(Array(try #require(Data(base64Encoded: r["patch"]?.stringValue ?? "")))).arrayValue ?? []
        #expect(patch.contains { $0["op"] == .string("add") && $0["path"] == .string("/metadata/annotations") })
        #expect(patch.contains { $0["op"] == .string("add") && $0["path"] == .string("/spec/initContainers") })
        // The workload is the Deployment: the ReplicaSet's hash is trimmed.
        let text = String(decoding: JSONPatch.encode(patch), as: UTF8.self)
        #expect(text.contains("{\"name\":\"MESHTRACE_WORKLOAD_NAME\",\"value\":\"web\"}"))
    }

    @Test func otherKindsSubresourcesAndUpdatesPassUnchanged() throws {
        let service = #"{"kind":{"group":"","version":"v1","kind":"Service"},"operation":"CREATE","uid":"s","object":{}}"#
        let status = Self.pod.replacingOccurrences(of: "\"operation\"", with: "\"subResource\":\"status\",\"operation\"")
        let update = Self.pod.replacingOccurrences(of: "\"CREATE\"", with: "\"UPDATE\"")
        for body in [service, status, update] {
            let r = try response(review(body))
            #expect(r["allowed"] == .bool(true))
            #expect(r["patch"] == nil)
            #expect(r["warnings"] == nil)
        }
    }

    @Test func malformedReviewsAreAllowedWithAWarning() throws {
        let bodies = [
            #"{"kind":"Something"}"#,
            #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"version":"v1","kind":"Pod"},"operation":"CREATE"}}"#,
            String(decoding: review(#"{"uid":"x","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":[1]}"#), as: UTF8.self),
            String(decoding: review(#"{"uid":"x","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":"no"}}}"#), as: UTF8.self),
        ]
        for body in bodies {
            let r = try response(Array(body.utf8))
            #expect(r["allowed"] == .bool(true))
            #expect(r["patch"] == nil)
            #expect(r["warnings"]?.arrayValue?.first?.stringValue?.hasPrefix("meshtrace: not injected") == true, "\(body)")
        }
    }

    @Test func notJSONIsABadRequest() {
        guard case .badRequest(let reason) = handler.answer(Array("<xml/>".utf8)) else { Issue.record("expected 400"); return }
        #expect(reason.contains("not JSON"))
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        guard case .badRequest = handler.answer(Array(deep.utf8)) else { Issue.record("expected 400 for nesting"); return }
    }

    @Test func patchPathsEscapeSlashesAndTildes() {
        let old = JSONValue.object([("a", .object([("x/y", .string("1"))]))])
        let new = JSONValue.object([("a", .object([("x/y", .string("2")), ("m~n", .string("3"))]))])
        let ops = JSONPatch.diff(from: old, to: new)
        #expect(ops.map { $0["path"] } == [.string("/a/x~1y"), .string("/a/m~0n")])
    }
}
