import NIOCore
import NIOHPACK
import NIOHTTP2
import Testing
@testable import SidecarProxy

/// What an HTTP/2 call keeps for a retry: every frame up to the replay limit (HTTP/1's), nothing
/// past it, nothing when keeping is off.
@Suite struct HTTP2RequestReplayTests {
    func data(_ n: Int, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(repeating: 0x61, count: n)), endStream: end))
    }

    @Test func keepsFramesUpToTheLimitAndNothingPastIt() {
        var replay = HTTP2RequestReplay(keeping: true)
        replay.keep(.headers(.init(headers: [":method": "POST"])))
        replay.keep(data(RetryPolicy.replayLimit - 1))
        replay.keep(data(1, end: true))
        #expect(replay.replayable && replay.frames.count == 3 && replay.bodyBytes == RetryPolicy.replayLimit)
        replay.keep(.headers(.init(headers: ["grpc-status": "0"], endStream: true)))
        #expect(replay.frames.count == 4, "trailers are kept")
        var over = HTTP2RequestReplay(keeping: true)
        over.keep(.headers(.init(headers: [":method": "POST"])))
        over.keep(data(RetryPolicy.replayLimit))
        over.keep(data(1))
        #expect(!over.replayable && over.frames.isEmpty)
        over.keep(data(1))
        #expect(!over.replayable && over.frames.isEmpty)
    }

    @Test func keepsNothingWhenOff() {
        var replay = HTTP2RequestReplay(keeping: false)
        replay.keep(.headers(.init(headers: [":method": "GET"], endStream: true)))
        #expect(!replay.replayable && replay.frames.isEmpty)
    }
}
