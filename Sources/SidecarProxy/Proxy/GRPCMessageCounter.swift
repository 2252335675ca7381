import NIOCore

/// Counts gRPC messages in one direction of a call as its DATA frames pass: each message is a
/// 5-byte prefix (compressed flag, 4-byte big-endian length) and that many bytes, and frames cut
/// across messages anywhere. Istio counts them for `istio_request_messages_total` and
/// `istio_response_messages_total`, which Kiali shows as gRPC message rates for streams.
struct GRPCMessageCounter {
    private(set) var messages = 0
    /// Bytes of the current message's body still to come.
    private var remaining = 0
    /// Prefix bytes read so far (0 at a message boundary).
    private var prefixRead = 0
    private var length: UInt32 = 0

    mutating func consume(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { consume($0) }
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            if remaining > 0 {
                let take = min(remaining, bytes.count - i)
                remaining -= take
                i += take
                continue
            }
            // In a prefix: byte 0 is the flag, bytes 1...4 the length.
            if prefixRead > 0 { length = length << 8 | UInt32(bytes[i]) }
            prefixRead += 1
            i += 1
            if prefixRead == 5 {
                messages += 1
                remaining = Int(length)
                prefixRead = 0
                length = 0
            }
        }
    }
}
