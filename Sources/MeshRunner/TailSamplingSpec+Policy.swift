import Collector
import Foundation
import TailSampling

extension TailSamplingSpec {
    /// The collector's policy for `telemetry.mode: tail`: the file named by `policyFile`, or
    /// "errors + slower than `slowerThanMs` + `keepPercent` of the rest".
    func policy(baseDirectory: String?) throws(MeshFileError) -> SamplingPolicyFile {
        guard let policyFile else {
            return SamplingPolicyFile(configuration: .errorsSlowAndPercent(slowerThanMs: slowerThanMs, percent: keepPercent, decisionWait: decisionWait))
        }
        let path = policyFile.hasPrefix("/") || baseDirectory == nil ? policyFile : (baseDirectory ?? ".") + "/" + policyFile
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MeshFileError(file: "telemetry", line: nil, column: nil, field: "tail.policyFile", message: "cannot read '\(path)'", hint: nil)
        }
        do {
            return try SamplingPolicyFile.parse(text, fileName: path)
        } catch {
            throw MeshFileError(file: error.file, line: error.line, column: error.column, field: error.field, message: error.message, hint: error.hint)
        }
    }

    /// One line for people: what tail mode keeps.
    public var summary: String {
        if let policyFile { return "the policies in \(policyFile)" }
        let wait = decisionWait.components.seconds
        return "errors, traces slower than \(slowerThanMs) ms and \(Self.percent(keepPercent))% of the rest (decided \(wait) s after a trace's first span, or when it is complete)"
    }

    static func percent(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
