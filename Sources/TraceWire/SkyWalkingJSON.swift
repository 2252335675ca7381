/// SkyWalking's HTTP report bodies: JSON `SegmentObject`s as the OAP's REST receiver takes them
/// (`POST /v3/segment`: one object, `/v3/segments`: an array), read into the generated messages.
///
/// The OAP reads them with protobuf's JSON mapping, so this does too: field names in lowerCamelCase,
/// enums by name (`"Entry"`, as the Python agent sends) or number, 64-bit integers as numbers or
/// strings, `null` for a default value, unknown fields ignored. Every error names its field
/// (`segments[1].spans[0].spanType: …`); `SkyWalkingSegment` decides what an error rejects.
package enum SkyWalkingJSON {
    /// The segments of a body, each decoded on its own: one bad segment is reported with its
    /// location and does not cost the others. Throws only when the body as a whole is unusable.
    package static func segments(_ bytes: [UInt8], array: Bool, limits: WireLimits = .default) throws(WireError)
        -> [(location: String, result: Result<Decoded, WireError>)]
    {
        let root = try JSONParser.parse(bytes, maxDepth: limits.maxJSONDepth)
        let items: [(String, JSONValue)]
        if array {
            guard case .array(let values) = root else {
                throw WireError("body: expected a JSON array of SegmentObject, got \(kind(root)) (send one object to /v3/segment)")
            }
            items = values.enumerated().map { ("segments[\($0.offset)]", $0.element) }
        } else {
            guard case .object = root else { throw WireError("body: expected a JSON SegmentObject, got \(kind(root))") }
            items = [("segment", root)]
        }
        return items.map { location, value in
            (location, Result { () throws(WireError) in try segment(value, at: location) })
        }
    }

    /// A segment and what could not be read of its spans: a span that cannot be read costs only
    /// itself. `spanLocations[i]` is where `segment.spans[i]` was in the body.
    package struct Decoded {
        package var segment = Skywalking_V3_SegmentObject()
        package var spanLocations: [String] = []
        package var spanErrors: [WireError] = []
    }

    package static func segment(_ value: JSONValue, at path: String) throws(WireError) -> Decoded {
        var d = Decoded()
        try forEachMember(value, at: path) { key, v, at throws(WireError) in
            switch key {
            case "traceId": d.segment.traceID = try string(v, at)
            case "traceSegmentId": d.segment.traceSegmentID = try string(v, at)
            case "service": d.segment.service = try string(v, at)
            case "serviceInstance": d.segment.serviceInstance = try string(v, at)
            case "isSizeLimited": d.segment.isSizeLimited = try bool(v, at)
            case "spans":
                guard case .array(let values) = v else { throw WireError("\(at): expected an array, got \(kind(v))") }
                for (i, element) in values.enumerated() {
                    do throws(WireError) {
                        d.segment.spans.append(try span(element, at: "\(at)[\(i)]"))
                        d.spanLocations.append("\(at)[\(i)]")
                    } catch {
                        d.spanErrors.append(error)
                    }
                }
            default: break
            }
        }
        return d
    }

    static func span(_ value: JSONValue, at path: String) throws(WireError) -> Skywalking_V3_SpanObject {
        var s = Skywalking_V3_SpanObject()
        try forEachMember(value, at: path) { key, v, at throws(WireError) in
            switch key {
            case "spanId": s.spanID = try int32(v, at)
            case "parentSpanId": s.parentSpanID = try int32(v, at)
            case "startTime": s.startTime = try int64(v, at)
            case "endTime": s.endTime = try int64(v, at)
            case "refs": s.refs = try list(v, at, reference)
            case "operationName": s.operationName = try string(v, at)
            case "peer": s.peer = try string(v, at)
            case "spanType": s.spanType = try enumValue(v, at, Skywalking_V3_SpanType.self)
            case "spanLayer": s.spanLayer = try enumValue(v, at, Skywalking_V3_SpanLayer.self)
            case "componentId": s.componentID = try int32(v, at)
            case "isError": s.isError = try bool(v, at)
            case "tags": s.tags = try list(v, at, pair)
            case "logs": s.logs = try list(v, at, log)
            case "skipAnalysis": s.skipAnalysis = try bool(v, at)
            default: break
            }
        }
        return s
    }

    static func reference(_ value: JSONValue, at path: String) throws(WireError) -> Skywalking_V3_SegmentReference {
        var r = Skywalking_V3_SegmentReference()
        try forEachMember(value, at: path) { key, v, at throws(WireError) in
            switch key {
            case "refType": r.refType = try enumValue(v, at, Skywalking_V3_RefType.self)
            case "traceId": r.traceID = try string(v, at)
            case "parentTraceSegmentId": r.parentTraceSegmentID = try string(v, at)
            case "parentSpanId": r.parentSpanID = try int32(v, at)
            case "parentService": r.parentService = try string(v, at)
            case "parentServiceInstance": r.parentServiceInstance = try string(v, at)
            case "parentEndpoint": r.parentEndpoint = try string(v, at)
            case "networkAddressUsedAtPeer": r.networkAddressUsedAtPeer = try string(v, at)
            default: break
            }
        }
        return r
    }

    static func log(_ value: JSONValue, at path: String) throws(WireError) -> Skywalking_V3_Log {
        var l = Skywalking_V3_Log()
        try forEachMember(value, at: path) { key, v, at throws(WireError) in
            switch key {
            case "time": l.time = try int64(v, at)
            case "data": l.data = try list(v, at, pair)
            default: break
            }
        }
        return l
    }

    static func pair(_ value: JSONValue, at path: String) throws(WireError) -> Skywalking_V3_KeyStringValuePair {
        var p = Skywalking_V3_KeyStringValuePair()
        try forEachMember(value, at: path) { key, v, at throws(WireError) in
            switch key {
            case "key": p.key = try string(v, at)
            case "value": p.value = try string(v, at)
            default: break
            }
        }
        return p
    }

    // MARK: - Values

    private static func forEachMember(
        _ value: JSONValue, at path: String, _ body: (String, JSONValue, String) throws(WireError) -> Void
    ) throws(WireError) {
        guard case .object(let members) = value else { throw WireError("\(path): expected an object, got \(kind(value))") }
        for (key, member) in members where !member.isNull { try body(key, member, path + "." + key) }
    }

    private static func list<T>(_ value: JSONValue, _ path: String, _ element: (JSONValue, String) throws(WireError) -> T) throws(WireError) -> [T] {
        guard case .array(let values) = value else { throw WireError("\(path): expected an array, got \(kind(value))") }
        var out: [T] = []
        out.reserveCapacity(values.count)
        for (i, v) in values.enumerated() { out.append(try element(v, "\(path)[\(i)]")) }
        return out
    }

    private static func string(_ value: JSONValue, _ path: String) throws(WireError) -> String {
        guard case .string(let s) = value else { throw WireError("\(path): expected a string, got \(kind(value))") }
        return s
    }

    private static func bool(_ value: JSONValue, _ path: String) throws(WireError) -> Bool {
        guard case .bool(let b) = value else { throw WireError("\(path): expected true or false, got \(kind(value))") }
        return b
    }

    /// Numbers or numeric strings, as protobuf's JSON mapping allows for every integer type.
    private static func int64(_ value: JSONValue, _ path: String) throws(WireError) -> Int64 {
        let parsed: Int64?
        switch value {
        case .number(let text): parsed = JSONNumbers.int64(string: text.utf8)
        case .string(let text): parsed = JSONNumbers.int64(string: text.utf8)
        default: throw WireError("\(path): expected an integer, got \(kind(value))")
        }
        guard let parsed else { throw WireError("\(path): expected an integer, got \(rendered(value))") }
        return parsed
    }

    private static func int32(_ value: JSONValue, _ path: String) throws(WireError) -> Int32 {
        let wide = try int64(value, path)
        guard let narrow = Int32(exactly: wide) else { throw WireError("\(path): \(wide) does not fit in int32") }
        return narrow
    }

    private static func enumValue<E: ProtoNamedEnum>(_ value: JSONValue, _ path: String, _ type: E.Type) throws(WireError) -> E {
        let names = E.protoNames
        if case .string(let name) = value {
            if let index = names.firstIndex(of: name), let match = E(rawValue: index) { return match }
            throw WireError("\(path): unknown value \(quotedForError(name)); expected one of \(names.joined(separator: ", "))")
        }
        let number = try int32(value, path)
        guard names.indices.contains(Int(number)), let match = E(rawValue: Int(number)) else {
            throw WireError("\(path): unknown value \(number); expected one of \(names.joined(separator: ", ")) or 0…\(names.count - 1)")
        }
        return match
    }

    private static func kind(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number(let t): return "the number \(t)"
        case .string(let s): return "the string \(quotedForError(s))"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    private static func rendered(_ value: JSONValue) -> String {
        if case .number(let t) = value { return t }
        return kind(value)
    }
}

/// The enum value names of the SkyWalking protocol, in number order (the generated enums keep
/// theirs internal to SwiftProtobuf).
package protocol ProtoNamedEnum: RawRepresentable where RawValue == Int {
    static var protoNames: [String] { get }
}

extension Skywalking_V3_SpanType: ProtoNamedEnum {
    package static let protoNames = ["Entry", "Exit", "Local"]
}

extension Skywalking_V3_SpanLayer: ProtoNamedEnum {
    package static let protoNames = ["Unknown", "Database", "RPCFramework", "Http", "MQ", "Cache", "FAAS"]
}

extension Skywalking_V3_RefType: ProtoNamedEnum {
    package static let protoNames = ["CrossProcess", "CrossThread"]
}
