import TraceWire

/// `meshtrace inject`: every pod template in a manifest gets the sidecar; other objects pass
/// through unchanged. Any error stops the whole run, so no partial output is ever written.
public struct ManifestInjector: Sendable {
    public var injector: PodInjector

    public init(options: InjectOptions) {
        injector = PodInjector(options: options)
    }

    public struct Result: Sendable {
        public var documents: [JSONValue]
        /// "document 2 (Deployment reviews-v1): …" lines for stderr.
        public var warnings: [String]
        /// How many pod templates got the sidecar.
        public var injectedCount: Int
    }

    public func inject(yaml: String) throws(ManifestError) -> Result {
        let documents = try ManifestReader.read(yaml)
        var result = Result(documents: [], warnings: [], injectedCount: 0)
        for doc in documents {
            var warnings: [String] = []
            do {
                let (value, count) = try injectObject(doc.value, path: "", warnings: &warnings)
                result.documents.append(value)
                result.injectedCount += count
            } catch {
                throw ManifestError(document: doc.index, line: doc.line, field: error.field, message: error.message)
            }
            let label = Self.label(doc.value)
            result.warnings += warnings.map { "document \(doc.index)\(label): \($0)" }
        }
        return result
    }

    /// " (Deployment reviews-v1)" for messages.
    static func label(_ object: JSONValue) -> String {
        guard let kind = object["kind"]?.stringValue else { return "" }
        let name = object["metadata"]?["name"]?.stringValue ?? object["metadata"]?["generateName"]?.stringValue ?? ""
        return " (\(kind)\(name.isEmpty ? "" : " " + name))"
    }

    /// One object: a workload gets its pod template injected, a `List` each of its items.
    func injectObject(_ object: JSONValue, path: String, warnings: inout [String]) throws(FieldError) -> (JSONValue, Int) {
        guard object.isObject else { throw FieldError(path, "expected a Kubernetes object (a mapping with apiVersion and kind), got \(Field.describe(object))") }
        guard let apiVersion = try Field.string(object["apiVersion"], FieldPath.join(path, "apiVersion")), !apiVersion.isEmpty else {
            throw FieldError(FieldPath.join(path, "apiVersion"), "required, missing: this does not look like a Kubernetes object")
        }
        guard let kind = try Field.string(object["kind"], FieldPath.join(path, "kind")), !kind.isEmpty else {
            throw FieldError(FieldPath.join(path, "kind"), "required, missing: this does not look like a Kubernetes object")
        }
        if kind == "List" || (kind.hasSuffix("List") && apiVersion == "v1") {
            var items = try Field.array(object["items"], FieldPath.join(path, "items"))
            var count = 0
            for i in items.indices {
                let (item, n) = try injectObject(items[i], path: "\(FieldPath.join(path, "items"))[\(i)]", warnings: &warnings)
                items[i] = item
                count += n
            }
            var out = object
            out.set("items", .array(items))
            return (out, count)
        }
        try BuiltInKinds.check(apiVersion: apiVersion, kind: kind, path: FieldPath.join(path, "kind"))
        guard let templatePath = BuiltInKinds.podTemplatePath(apiVersion: apiVersion, kind: kind) else { return (object, 0) }

        let metadata = try Field.object(object["metadata"], FieldPath.join(path, "metadata")) ?? .object([])
        let name = try Field.string(metadata["name"], FieldPath.join(path, "metadata.name")) ?? ""
        let ownerName = name.isEmpty ? (try Field.string(metadata["generateName"], FieldPath.join(path, "metadata.generateName")) ?? "") : name

        if templatePath.isEmpty {
            // A Pod: the object is its own template.
            switch try injector.inject(object, workloadName: WorkloadName.forBarePod(name: name, generateName: ownerName), path: path, warnings: &warnings) {
            case .injected(let pod): return (pod, 1)
            case .skipped: return (object, 0)
            }
        }
        var fieldPath = path
        var template: JSONValue = object
        for key in templatePath {
            fieldPath = FieldPath.join(fieldPath, key)
            guard let next = try Field.object(template[key], fieldPath, required: true) else { throw FieldError(fieldPath, "required, missing") }
            template = next
        }
        let injected: JSONValue
        switch try injector.inject(template, workloadName: ownerName, path: fieldPath, warnings: &warnings) {
        case .injected(let pod): injected = pod
        case .skipped: return (object, 0)
        }
        return (Self.replacing(in: object, at: templatePath[...], with: injected), 1)
    }

    static func replacing(in object: JSONValue, at path: ArraySlice<String>, with value: JSONValue) -> JSONValue {
        guard let key = path.first else { return value }
        var out = object
        out.set(key, replacing(in: object[key] ?? .object([]), at: path.dropFirst(), with: value))
        return out
    }
}
