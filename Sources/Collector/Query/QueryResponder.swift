import Foundation
import Hummingbird

/// How the `/api/meshtrace/*` views answer: a JSON body, or Jaeger's `errors` envelope with the
/// status and a message that names the parameter to fix.
enum QueryResponder {
    static func respond(_ what: String, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as HTTPFailure {
            return .json(JaegerQueryAPI.envelope(data: "null", total: 0, errors: [(failure.status.code, failure.message, nil)]), status: failure.status)
        } catch {
            return .json(JaegerQueryAPI.envelope(data: "null", total: 0, errors: [(500, "\(what) failed: \(error)", nil)]), status: .internalServerError)
        }
    }

    static func encode(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return .json(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
