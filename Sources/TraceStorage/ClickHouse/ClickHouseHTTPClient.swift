import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TraceWire

extension String {
    fileprivate func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// ClickHouse's HTTP interface through async-http-client: the statement goes in the `query`
/// URL parameter, data (RowBinary rows) in the POST body. Reads ask for `wait_end_of_query=1`,
/// so an error found mid-query comes back as an HTTP error, not as text after a 200.
final class ClickHouseHTTPClient: Sendable {
    private let client: HTTPClient
    private let base: String
    private let authorization: String
    private let database: String
    private let timeout: TimeAmount
    private let logger: Logger
    private let isShutDown = Atomic<Bool>(false)

    init(configuration: ClickHouseConfiguration, logger: Logger) {
        var base = configuration.url
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base + "/"
        self.authorization = "Basic " + Data("\(configuration.user):\(configuration.password)".utf8).base64EncodedString()
        self.database = configuration.database
        self.timeout = .milliseconds(Int64(configuration.requestTimeoutSeconds * 1000))
        self.logger = logger
        var clientConfig = HTTPClient.Configuration()
        clientConfig.timeout = .init(connect: .seconds(5), read: timeout)
        clientConfig.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
    }

    /// Runs `sql` (with `body` as its data, if any) and returns the response body.
    /// `useDatabase: false` for statements that must run before the database exists.
    @discardableResult
    func execute(
        _ sql: String, body: [UInt8]? = nil, settings: [String: String] = [:], useDatabase: Bool = true, gzip: Bool = false,
        queryID: String? = nil
    ) async throws -> [UInt8] {
        var params = settings
        if useDatabase { params["database"] = database }
        if let queryID { params["query_id"] = queryID }
        // Without data the statement is the POST body (no URL length limit); with data it goes
        // in the URL and the rows in the body.
        if body == nil { params["wait_end_of_query"] = "1" } else { params["query"] = sql }
        let query = params.sorted { $0.key < $1.key }.map { Self.percentEncode($0.key) + "=" + Self.percentEncode($0.value) }
        var request = HTTPClientRequest(url: base + "?" + query.joined(separator: "&"))
        request.method = .POST
        request.headers.add(name: "Authorization", value: authorization)
        if let body {
            if gzip {
                request.headers.add(name: "Content-Encoding", value: "gzip")
                request.body = .bytes(ByteBuffer(bytes: Gzip.compress(body, level: 1)))
            } else {
                request.body = .bytes(ByteBuffer(bytes: body))
            }
        } else {
            request.body = .bytes(ByteBuffer(string: sql))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout, logger: logger)
        } catch {
            throw ClickHouseError.unreachable(String(describing: error))
        }
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: 1 << 30)
        } catch {
            throw ClickHouseError.unreachable("reading the answer: \(error)")
        }
        let data = Array(bytes.readableBytesView)
        guard response.status == .ok else {
            let text = String(decoding: data.prefix(2000), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ClickHouseError.server(status: Int(response.status.code), code: Self.errorCode(text), message: text)
        }
        return data
    }

    /// `SELECT ... FORMAT TSV` split into rows of fields (for short admin answers only; values
    /// there are names and numbers, never user data).
    func rows(_ sql: String) async throws -> [[String]] {
        let text = String(decoding: try await execute(sql + " FORMAT TabSeparated"), as: UTF8.self)
        return text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    func ping() async throws {
        var request = HTTPClientRequest(url: base + "ping")
        request.method = .GET
        do {
            // Short: async-http-client retries a refused connect until the deadline, and the first probe
            // runs before the listeners start.
            let response = try await client.execute(request, timeout: .seconds(2), logger: logger)
            _ = try await response.body.collect(upTo: 1024)
            guard response.status == .ok else { throw ClickHouseError.server(status: Int(response.status.code), code: nil, message: "ping") }
        } catch let error as ClickHouseError {
            throw error
        } catch {
            throw ClickHouseError.unreachable(String(describing: error))
        }
    }

    func shutdown() async throws {
        guard !isShutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try await client.shutdown()
    }

    /// Dropped without `shutdown()` (a store never closed on some error path): shut the client
    /// down in the background instead of leaking its connections. async-http-client traps on
    /// this in debug builds, which turned one failing test into a crash of the whole test process.
    deinit {
        if !isShutDown.load(ordering: .acquiring) { client.shutdown { _ in } }
    }

    /// Every byte but the unreserved set as `%HH`.
    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// `Code: 60, e.displayText() = ...` → 60.
    static func errorCode(_ text: String) -> Int? {
        guard text.hasPrefix("Code: ") else { return nil }
        return Int(text.dropFirst(6).prefix { $0.isNumber })
    }
}
