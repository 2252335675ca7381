#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 GET over a blocking loopback socket with a short timeout: the probe runs
/// once a second per service, so it stays independent of the proxies it is checking.
///
/// It behaves as kubelet's probes do: `Connection: close`, then reads the response to its end
/// (at most `maxResponseBytes`) before closing. Closing with the response unread made the
/// kernel answer the app's last write with a reset, and Python's `http.server` printed a
/// `ConnectionResetError` traceback for every probe.
enum HealthProbe {
    static let maxResponseBytes = 64 * 1024

    static func check(port: Int, path: String, timeoutMillis: Int = 1000) async -> Bool {
        await Task.detached { probe(port: port, path: path, timeoutMillis: timeoutMillis) }.value
    }

    static func probe(port: Int, path: String, timeoutMillis: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutMillis / 1000, tv_usec: (timeoutMillis % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard LoopbackAddress.with(port: port, { connect(fd, $0, $1) }) == 0 else { return false }
        if path == ServiceSpec.tcpHealth { return true }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: meshtrace-health\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return false }
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var total = 0
        // To the end of the response (the app closes, as asked), a timeout, or the cap.
        while total < maxResponseBytes {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if head.count < 32 { head.append(contentsOf: buffer[0..<min(n, 32 - head.count)]) }
            total += n
        }
        return statusIsHealthy(head)
    }

    /// "HTTP/1.x 2xx" or 3xx.
    static func statusIsHealthy(_ head: [UInt8]) -> Bool {
        guard head.count >= 12 else { return false }
        let parts = String(decoding: head, as: UTF8.self).split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else { return false }
        return (200..<400).contains(code)
    }
}
