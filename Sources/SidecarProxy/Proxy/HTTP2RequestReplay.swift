import NIOHTTP2

/// What an HTTP/2 call keeps of its request so that a retry can send it again: the HEADERS,
/// DATA and trailers frames as they went upstream (buffer references, not copies), until the
/// body passes `RetryPolicy.replayLimit`. Past it the call is no longer replayable and keeps
/// nothing, as Envoy does not retry a request that outgrew its buffer. HTTP/1 keeps its body
/// under the same limit (`Exchange.replay`).
struct HTTP2RequestReplay {
    private(set) var frames: [HTTP2Frame.FramePayload] = []
    private(set) var bodyBytes = 0
    private(set) var replayable: Bool

    /// - Parameter keeping: false where nothing is ever retried (inbound): nothing is kept.
    init(keeping: Bool) {
        replayable = keeping
    }

    mutating func keep(_ payload: HTTP2Frame.FramePayload) {
        guard replayable else { return }
        if case .data(let data) = payload {
            bodyBytes += data.data.readableBytes
            guard bodyBytes <= RetryPolicy.replayLimit else {
                replayable = false
                frames = []
                return
            }
        }
        frames.append(payload)
    }
}
