import NIOCore

/// Backpressure for one side of the proxy: a channel's read is held while the other side cannot
/// take more bytes, and the one read that was asked for goes out once it can. With auto-read,
/// NIO asks for the next read after every read; holding it is what stops the socket being read.
struct HeldRead {
    private var pending = false

    /// Passes the read on, or holds it when `hold`.
    mutating func read(_ context: ChannelHandlerContext, hold: Bool) {
        if hold {
            pending = true
        } else {
            context.read()
        }
    }

    /// Lets a held read go (nothing when none is held).
    mutating func resume(_ context: ChannelHandlerContext?) {
        guard pending, let context else { return }
        pending = false
        context.read()
    }
}
