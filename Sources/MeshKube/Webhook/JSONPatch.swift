import Foundation
import TraceWire

/// RFC 6902 JSON Patch between two documents, as the admission webhook must answer: applied to
/// the pod the API server sent, it gives the injected pod. Objects are compared key by key;
/// a list that changed length is replaced whole (containers gain members at the front for native
/// sidecars, which index-wise patches would turn into a long run of replaces anyway).
public enum JSONPatch {
    public static func diff(from old: JSONValue, to new: JSONValue) -> [JSONValue] {
        var ops: [JSONValue] = []
        diff(old, new, path: "", into: &ops)
        return ops
    }

    public static func encode(_ ops: [JSONValue]) -> [UInt8] {
        JSONValue.array(ops).jsonBytes
    }

    private static func diff(_ old: JSONValue, _ new: JSONValue, path: String, into ops: inout [JSONValue]) {
        if old == new { return }
        switch (old, new) {
        case (.object(let a), .object(let b)):
            for (key, value) in a where !b.contains(where: { $0.key == key }) {
                _ = value
                ops.append(op("remove", path + "/" + escape(key)))
            }
            for (key, value) in b {
                let child = path + "/" + escape(key)
                if let existing = a.first(where: { $0.key == key })?.value {
                    diff(existing, value, path: child, into: &ops)
                } else {
                    ops.append(op("add", child, value))
                }
            }
        case (.array(let a), .array(let b)) where a.count == b.count:
            for i in a.indices { diff(a[i], b[i], path: path + "/\(i)", into: &ops) }
        default:
            ops.append(op("replace", path, new))
        }
    }

    private static func op(_ name: String, _ path: String, _ value: JSONValue? = nil) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("op", .string(name)), ("path", .string(path))]
        if let value { members.append(("value", value)) }
        return .object(members)
    }

    /// RFC 6901: `~` is `~0`, `/` is `~1` (annotation keys like `prometheus.io/port` hold slashes).
    static func escape(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}
