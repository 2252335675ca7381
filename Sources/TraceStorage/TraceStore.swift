import Logging
import TraceModel

import Foundation

/// Search criteria. All criteria must hold for at least one span of a trace (the "same span" rule of
/// Zipkin's annotationQuery and Jaeger's tag search). Results are distinct trace ids ordered by the
/// start time of that matching span, newest first, at most `limit`.
public struct TraceQuery: Sendable, Hashable {
    /// The span's `serviceName` (local service).
    public var serviceName: String?
    /// `remoteEndpoint.serviceName`, or the `peer.service` attribute when the span has no remote service name.
    public var remoteServiceName: String?
    /// The span name, exact and case-sensitive.
    public var operationName: String?
    public var spanKind: SpanKind?
    /// Exact match, ANDed; matched against span attributes (`AttributeValue.description`), resource
    /// attributes, and event attributes of ONE span. `"error": "true"` also matches spans whose
    /// status is error (or that carry a Zipkin-style `error` tag with any value but "false": `Span.isError`).
    public var tags: [String: String]
    /// Zipkin bare words: each must match an event name or an attribute key (span or resource) on the same span.
    public var annotationTerms: [String]
    /// Inclusive bounds on the span's duration.
    public var minDurationNanos: UInt64?
    public var maxDurationNanos: UInt64?
    /// Span start time must lie in `[startTimeMinNanos, startTimeMaxNanos]`.
    public var startTimeMinNanos: UInt64
    public var startTimeMaxNanos: UInt64
    public var limit: Int

    public init(
        serviceName: String? = nil,
        remoteServiceName: String? = nil,
        operationName: String? = nil,
        spanKind: SpanKind? = nil,
        tags: [String: String] = [:],
        annotationTerms: [String] = [],
        minDurationNanos: UInt64? = nil,
        maxDurationNanos: UInt64? = nil,
        startTimeMinNanos: UInt64 = 0,
        startTimeMaxNanos: UInt64 = UInt64.max,
        limit: Int = 20
    ) {
        self.serviceName = serviceName
        self.remoteServiceName = remoteServiceName
        self.operationName = operationName
        self.spanKind = spanKind
        self.tags = tags
        self.annotationTerms = annotationTerms
        self.minDurationNanos = minDurationNanos
        self.maxDurationNanos = maxDurationNanos
        self.startTimeMinNanos = startTimeMinNanos
        self.startTimeMaxNanos = startTimeMaxNanos
        self.limit = limit
    }
}

/// A span name as seen for one service and kind (Jaeger's `/api/operations`).
public struct Operation: Sendable, Hashable {
    public var name: String
    public var kind: SpanKind

    public init(name: String, kind: SpanKind) {
        self.name = name
        self.kind = kind
    }
}

/// Zipkin's dependency link: `parent` called `child` `callCount` times, `errorCount` of which failed.
public struct DependencyLink: Sendable, Hashable {
    public var parent: String
    public var child: String
    public var callCount: Int
    public var errorCount: Int

    public init(parent: String, child: String, callCount: Int, errorCount: Int = 0) {
        self.parent = parent
        self.child = child
        self.callCount = callCount
        self.errorCount = errorCount
    }
}

public struct StoreStats: Sendable {
    public var spanCount: Int
    /// Nil where counting is too expensive to do on every call (SQLite).
    public var traceCount: Int?
    /// Nil for stores that keep nothing on disk.
    public var bytesOnDisk: Int64?

    public init(spanCount: Int, traceCount: Int?, bytesOnDisk: Int64?) {
        self.spanCount = spanCount
        self.traceCount = traceCount
        self.bytesOnDisk = bytesOnDisk
    }
}

/// One interface for every backend (Jaeger-style), one factory to pick the backend.
public protocol TraceStore: Sendable {
    /// Durable when it returns (SQLite: committed). Spans are stored as given; the store does not de-duplicate.
    func write(_ spans: [Span]) async throws
    /// `[]` when unknown; spans sorted by start time.
    func trace(id: TraceID) async throws -> [Span]
    /// One entry per requested id, in the same order (`[]` for an unknown id).
    func traces(ids: [TraceID]) async throws -> [[Span]]
    func findTraceIDs(_ query: TraceQuery) async throws -> [TraceID]
    /// Sorted.
    func serviceNames() async throws -> [String]
    /// Sorted by name (then kind). `kind == nil` means every kind.
    func operations(service: String, kind: SpanKind?) async throws -> [Operation]
    /// Sorted, distinct remote service names (`remoteEndpoint.serviceName`, else the `peer.service` attribute)
    /// of that service's spans.
    func remoteServiceNames(service: String) async throws -> [String]
    /// Links of every trace that has a span starting in `[startNanos, endNanos]`, by `DependencyLinker`, summed.
    func dependencies(startNanos: UInt64, endNanos: UInt64) async throws -> [DependencyLink]
    /// Spans (of any trace) that started in `[startNanos, endNanos]`, newest first, at most `limit`.
    /// For windowed aggregates such as the service graph.
    func spans(startNanos: UInt64, endNanos: UInt64, limit: Int) async throws -> [Span]
    /// Retention: deletes spans that started before the given time; returns how many were deleted.
    func deleteSpans(startedBefore: UInt64) async throws -> Int
    func stats() async throws -> StoreStats
    func close() async throws
    /// Reachable and usable (the collector's `/readyz`); probed about once a second.
    func isReady() async -> Bool
    /// Retention cutoffs are rounded down to a multiple of this (0: exact). ClickHouse drops
    /// whole day partitions instead of rewriting rows.
    var retentionGranularityNanos: UInt64 { get }
}

extension TraceStore {
    public func isReady() async -> Bool { true }
    public var retentionGranularityNanos: UInt64 { 0 }
}

public enum StorageKind: String, Sendable, CaseIterable {
    case sqlite
    case memory
    case clickhouse
}

public enum TraceStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case dataDirectoryRequired
    case cannotCreateDirectory(String)
    case closed
    case corruptRecord(String)
    case invalidConfiguration(String)
    case clickHouseSettingsRequired

    public var description: String {
        switch self {
        case .dataDirectoryRequired: return "the sqlite store needs a data directory"
        case .cannotCreateDirectory(let path): return "cannot create data directory \(path)"
        case .closed: return "the trace store is closed"
        case .corruptRecord(let why): return "corrupt span record: \(why)"
        case .invalidConfiguration(let why): return why
        case .clickHouseSettingsRequired: return "the clickhouse store needs --clickhouse-url"
        }
    }
}

public enum TraceStoreFactory {
    public static let sqliteFileName = "meshtrace.sqlite"

    /// `.sqlite` opens (creating directories as needed) `<dataDirectory>/meshtrace.sqlite`.
    /// `.memory` ignores `dataDirectory`.
    /// `.clickhouse` connects lazily: it does not need the server to be up yet.
    public static func make(
        kind: StorageKind, dataDirectory: String?, clickHouse: ClickHouseConfiguration? = nil, logger: Logger
    ) throws -> any TraceStore {
        switch kind {
        case .clickhouse:
            guard let clickHouse else { throw TraceStoreError.clickHouseSettingsRequired }
            return try ClickHouseTraceStore(configuration: clickHouse, logger: logger)
        case .memory:
            return InMemoryTraceStore(logger: logger)
        case .sqlite:
            guard let dataDirectory, !dataDirectory.isEmpty else { throw TraceStoreError.dataDirectoryRequired }
            do {
                try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            } catch {
                throw TraceStoreError.cannotCreateDirectory(dataDirectory)
            }
            let path = dataDirectory.hasSuffix("/") ? dataDirectory + sqliteFileName : dataDirectory + "/" + sqliteFileName
            return try SQLiteTraceStore(path: path, logger: logger)
        }
    }
}
