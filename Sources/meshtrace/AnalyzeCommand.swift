import ArgumentParser
import Foundation
import MeshRunner
import TraceAnalysis
import TraceExport

/// `meshtrace analyze`: the propagation doctor. Asks the collector's analysis endpoint
/// (`/api/meshtrace/analysis`, same rules as `TraceAnalysis`) and prints what breaks traces,
/// where, and the fix. Exit status: 0 clean, 1 problems found (so CI can gate on it), 2 bad
/// arguments or no collector.
struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Find where traces break and why: dropped context, orphans, partial propagation, clock skew, sampling flips, uninstrumented hops.",
        discussion: """
            Reads the spans stored in the last --lookback and reports each problem with the service, \
            evidence (counts and trace ids) and a one-sentence fix. Exits 0 when clean, 1 when problems \
            are found, 2 on bad arguments or when the collector cannot be reached. \
            `meshtrace analyze critical-path TRACE_ID` prints a trace's critical path.
            """,
        subcommands: [AnalyzeRun.self, CriticalPathCommand.self],
        defaultSubcommand: AnalyzeRun.self
    )
}

/// Options shared by the analyze subcommands.
struct QueryOptions: ParsableArguments {
    @Option(name: .customLong("query"), help: "Query API base URL (default: the running mesh's, else http://127.0.0.1:16686).")
    var query: String?

    var baseURL: String {
        let running = (try? MeshStateFile.select(mesh: nil, directory: MeshStateFile.directory()))?.contents.queryURL
        let url = query ?? running ?? "http://127.0.0.1:16686"
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}

enum AnalyzeFailure {
    /// Prints to stderr and exits 2: the documented status for usage and connection errors.
    static func exit(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        return ExitCode(2)
    }

    /// GETs `url`; any failure becomes a clear message and exit status 2.
    static func get(_ url: String, what: String) async throws -> Data {
        guard let u = URL(string: url) else { throw exit("not a URL: \(url)") }
        let response: OneShotHTTPClient.Response
        do {
            // An analysis over a day of spans takes a while to compute; longer than 30 s means
            // the collector is stuck, and CI should hear so rather than hang.
            response = try await OneShotHTTPClient.send(.GET, url: u.absoluteString, timeout: .seconds(30))
        } catch {
            throw exit("cannot reach the collector at \(url): \(error.localizedDescription). Is `meshtrace demo`, `meshtrace up` or `meshtrace collector` running? Use --query URL.")
        }
        let status = response.status
        let data = Data(response.body)
        guard status == 200 else {
            let body = String(decoding: data.prefix(300), as: UTF8.self)
            if status == 404 && what == "analysis" {
                throw exit("\(url) answered 404: this query API has no /api/meshtrace/analysis (is it a meshtrace collector?)")
            }
            throw exit("\(what) request failed: HTTP \(status) from \(url): \(body)")
        }
        return data
    }
}

struct AnalyzeRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Analyze stored traces (the default).")

    @OptionGroup var options: QueryOptions
    @Option(help: "How far back to look: 30s, 15m, 1h (at most 24h).") var lookback = "15m"
    @Option(help: "Only findings about this service.") var service: String?
    @Option(help: "text (for people) or json (for machines).") var format = "text"

    func run() async throws {
        guard format == "text" || format == "json" else { throw AnalyzeFailure.exit("--format must be text or json, got '\(format)'") }
        guard Self.isDuration(lookback) else { throw AnalyzeFailure.exit("--lookback must be a duration like 30s, 15m or 1h, got '\(lookback)'") }
        let base = options.baseURL
        var url = "\(base)/api/meshtrace/analysis?lookback=\(lookback)"
        if let service {
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
            url += "&service=" + (service.addingPercentEncoding(withAllowedCharacters: allowed) ?? service)
        }
        let data = try await AnalyzeFailure.get(url, what: "analysis")
        let report: AnalysisReport
        do {
            report = try JSONDecoder().decode(AnalysisReport.self, from: data)
        } catch {
            throw AnalyzeFailure.exit("cannot read the analysis from \(url): \(error)")
        }
        if format == "json" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text(queryURL: base), terminator: "")
        }
        fflush(nil)
        if !report.findings.isEmpty { throw ExitCode(1) }
    }

    /// Go-style durations as the query API takes them (`1h30m`, `500ms`, `15m`).
    static func isDuration(_ text: String) -> Bool {
        text.range(of: #"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"#, options: .regularExpression) != nil
    }
}

struct CriticalPathCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "critical-path", abstract: "Print a trace's critical path (Jaeger's rule: follow the last-finishing child).")

    @OptionGroup var options: QueryOptions
    @Argument(help: "Trace id (hex).") var traceID: String
    @Option(help: "text or json.") var format = "text"

    func run() async throws {
        guard format == "text" || format == "json" else { throw AnalyzeFailure.exit("--format must be text or json, got '\(format)'") }
        guard traceID.range(of: "^[0-9a-fA-F]{1,32}$", options: .regularExpression) != nil else {
            throw AnalyzeFailure.exit("trace id must be 1-32 hex digits, got '\(traceID)'")
        }
        let data = try await AnalyzeFailure.get("\(options.baseURL)/api/meshtrace/critical-path/\(traceID)", what: "critical path")
        if format == "json" {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let body: CriticalPathReport
        do { body = try JSONDecoder().decode(CriticalPathReport.self, from: data) } catch { throw AnalyzeFailure.exit("cannot read the critical path: \(error)") }
        let origin = body.sections.first?.startMicros ?? 0
        print("critical path of trace \(body.traceID): \(String(format: "%.2f", Double(body.totalMicros) / 1000)) ms in \(body.sections.count) sections")
        for s in body.sections {
            let offset = String(format: "%9.2f", Double(s.startMicros - origin) / 1000)
            let length = String(format: "%8.2f", Double(s.endMicros - s.startMicros) / 1000)
            print("  +\(offset) ms  \(length) ms  \(s.service)  \(s.name)  (span \(s.spanID))")
        }
    }
}
