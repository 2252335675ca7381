import CZlib

public enum Gzip {
    /// Inflates a gzip (or zlib) body, auto-detected (windowBits 15+32). Concatenated gzip members are
    /// inflated in turn. Throws `.tooLarge` ("body exceeds N bytes after decompression") as soon as the
    /// output passes `limit`, so a compression bomb costs at most `limit` bytes of memory.
    public static func decompress(_ bytes: [UInt8], limit: Int) throws(WireError) -> [UInt8] {
        guard !bytes.isEmpty else { throw WireError("truncated gzip stream") }
        let limit = max(0, limit)
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw WireError("invalid gzip data: cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }

        var output = [UInt8]()
        output.reserveCapacity(min(limit, max(bytes.count * 4, 4096)))
        let chunkSize = 64 * 1024
        var chunk = [UInt8](repeating: 0, count: chunkSize)

        let result: Result<Void, WireError> = bytes.withUnsafeBufferPointer { input in
            guard let base = input.baseAddress else { return .failure(WireError("truncated gzip stream")) }
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = uInt(input.count)
            while true {
                let status: Int32 = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunkSize - Int(stream.avail_out)
                if produced > 0 {
                    if output.count + produced > limit {
                        return .failure(WireError("body exceeds \(limit) bytes after decompression", kind: .tooLarge))
                    }
                    output.append(contentsOf: chunk[0..<produced])
                }
                switch status {
                case Z_STREAM_END:
                    // Another gzip member may follow (as `cat a.gz b.gz`); trailing zero padding is ignored.
                    let rest = Int(stream.avail_in)
                    if rest == 0 { return .success(()) }
                    let offset = input.count - rest
                    if input[offset...].allSatisfy({ $0 == 0 }) { return .success(()) }
                    guard inflateReset(&stream) == Z_OK else { return .failure(WireError("invalid gzip data")) }
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress possible: input exhausted before the end of the stream.
                    if stream.avail_in == 0 { return .failure(WireError("truncated gzip stream")) }
                    if produced == 0 && stream.avail_out != 0 { return .failure(WireError("invalid gzip data")) }
                case Z_NEED_DICT:
                    return .failure(WireError("invalid gzip data: preset dictionary required"))
                default:
                    return .failure(WireError("invalid gzip data"))
                }
            }
        }
        try result.get()
        return output
    }

    /// Gzip-compresses `bytes` (used by tests and for compressed responses).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: gzip header and trailer.
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return [] }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(bytes.count))) + 32
        var out = [UInt8](repeating: 0, count: bound)
        var input = bytes
        let produced: Int = input.withUnsafeMutableBufferPointer { inBuf in
            out.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                let status = deflate(&stream, Z_FINISH)
                return status == Z_STREAM_END ? outBuf.count - Int(stream.avail_out) : -1
            }
        }
        guard produced >= 0 else { return [] }
        out.removeLast(out.count - produced)
        return out
    }
}
