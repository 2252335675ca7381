import Foundation
import Logging

/// The three services of the demo mesh: frontend → backend → database.
public enum DemoRole: String, CaseIterable, Sendable {
    case frontend
    case backend
    case database

    /// The service this one calls, if any.
    public var upstream: DemoRole? {
        switch self {
        case .frontend: return .backend
        case .backend: return .database
        case .database: return nil
        }
    }

    /// The environment variable holding the base URL for calling this service (`BACKEND_URL`).
    public var urlEnvironmentVariable: String { rawValue.uppercased() + "_URL" }
}

/// How one demo service listens and reaches its upstream. Everything the process environment
/// can set is a plain field here too, so tests and an in-process runner need no `setenv`.
public struct DemoServiceConfiguration: Sendable {
    public var role: DemoRole
    public var host: String
    /// 0 picks a free port; the running service reports the real one.
    public var port: Int
    /// backend only: do not forward trace headers to the database (the demo's "broken" mesh).
    public var broken: Bool
    /// backend, broken only: name the request each database call serves in `DemoCausality.header`.
    /// Off unless asked for (`--record-causality`): it is bookkeeping for measuring parent
    /// inference, not something a demo's spans should show.
    public var recordsCausality: Bool
    /// Base URLs of upstream services by role, e.g. `.backend: "http://127.0.0.1:8081"`.
    /// A role without one is called as `http://<role>`, a name the sidecar resolves.
    public var upstreamURLs: [DemoRole: String]
    /// When set, upstream calls go through this forward proxy (the sidecar) in absolute form.
    public var proxy: HTTPProxy?
    /// Per upstream call.
    public var upstreamTimeout: Duration

    public init(
        role: DemoRole, host: String = "127.0.0.1", port: Int = 0, broken: Bool = false, recordsCausality: Bool = false,
        upstreamURLs: [DemoRole: String] = [:], proxy: HTTPProxy? = nil, upstreamTimeout: Duration = .seconds(10)
    ) {
        self.role = role
        self.host = host
        self.port = port
        self.broken = broken
        self.recordsCausality = recordsCausality
        self.upstreamURLs = upstreamURLs
        self.proxy = proxy
        self.upstreamTimeout = upstreamTimeout
    }

    /// Reads `BACKEND_URL`, `DATABASE_URL` (any `<ROLE>_URL`) and `HTTP_PROXY`/`http_proxy`.
    public static func fromEnvironment(
        role: DemoRole, host: String = "127.0.0.1", port: Int = 0, broken: Bool = false, recordsCausality: Bool = false,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> DemoServiceConfiguration {
        var urls: [DemoRole: String] = [:]
        for other in DemoRole.allCases {
            if let value = environment[other.urlEnvironmentVariable]?.trimmingCharacters(in: .whitespaces), !value.isEmpty {
                urls[other] = value
            }
        }
        return DemoServiceConfiguration(
            role: role, host: host, port: port, broken: broken, recordsCausality: recordsCausality, upstreamURLs: urls, proxy: HTTPProxy.fromEnvironment(environment))
    }

    /// `http://backend`-style base URL for `role`, without a trailing slash.
    public func baseURL(of role: DemoRole) -> String {
        var url = upstreamURLs[role] ?? "http://\(role.rawValue)"
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }
}
