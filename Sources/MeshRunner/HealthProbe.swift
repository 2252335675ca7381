#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 GET over a blocking loopback socket with a short timeout: the probe runs
/// once a second per service, so it stays independent of the proxies it is checking.
enum HealthProbe {
    static func check(port: Int, path: String, timeoutMillis: Int = 1000) async -> Bool {
        await Task.detached { probe(port: port, path: path, timeoutMillis: timeoutMillis) }.value
    }

    static func probe(port: Int, path: String, timeoutMillis: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutMillis / 1000, tv_usec: (timeoutMillis % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard LoopbackAddress.with(port: port, { connect(fd, $0, $1) }) == 0 else { return false }
        if path == ServiceSpec.tcpHealth { return true }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: meshtrace-health\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 12 else { return false }
        let statusLine = String(decoding: buffer[0..<n], as: UTF8.self)
        // "HTTP/1.x 2xx"
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let code = Int(parts[1]) else { return false }
        return (200..<400).contains(code)
    }
}
