import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// One embedded file of the web UI (see `scripts/embed-ui`).
struct EmbeddedAsset: Sendable {
    let contentType: String
    /// Quoted strong validator: FNV-1a 64 of the file.
    let etag: String
    let bytes: ByteBuffer

    init(contentType: String, etag: String, text: String) {
        self.contentType = contentType
        self.etag = etag
        self.bytes = ByteBuffer(string: text)
    }
}

/// Serves the single-page UI on the query port: `/`, `/search`, `/trace/{id}` and `/graph` all
/// answer `index.html` (the page routes itself; the first two paths are Jaeger UI's, so shared
/// links keep working), and `/static/{file}` the embedded assets. `/api/*` is not touched.
struct WebUI: Sendable {
    var assets: [String: EmbeddedAsset] = EmbeddedAssets.files

    /// The UI only talks to its own origin and never evaluates inline code, so a tag value that
    /// slipped into markup still could not run.
    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        + "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

    static let pagePaths = ["/", "/search", "/trace", "/trace/{traceID}", "/graph", "/dependencies", "/health", "/monitor"]

    func register(on router: Router<BasicRequestContext>) {
        for path in Self.pagePaths {
            router.get(RouterPath(stringLiteral: path)) { request, _ in self.serve("index.html", request) }
        }
        router.get("/static/{file}") { request, context in
            self.serve(context.parameters.get("file") ?? "", request)
        }
    }

    func serve(_ name: String, _ request: Request) -> Response {
        guard let asset = assets[name] else {
            return .text("no such UI asset: \(name)", status: .notFound)
        }
        var headers = HTTPFields()
        // Revalidate every time (cheap: 304 on a matching ETag) so an upgraded binary's UI is
        // picked up at once, while unchanged files never travel twice.
        headers[.cacheControl] = "no-cache"
        headers[.eTag] = asset.etag
        headers[.init("X-Content-Type-Options")!] = "nosniff"
        if name == "index.html" {
            headers[.init("Content-Security-Policy")!] = Self.contentSecurityPolicy
            headers[.init("Referrer-Policy")!] = "no-referrer"
        }
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: {
            $0.trimmingCharacters(in: .whitespaces) == asset.etag || $0.trimmingCharacters(in: .whitespaces) == "*"
        }) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        headers[.contentLength] = String(asset.bytes.readableBytes)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: asset.bytes))
    }
}
