import NIOCore
import NIOPosix
import SidecarProxy

/// A port of the mesh's own namespace made reachable inside a pod: apps in a pod export their
/// spans to `127.0.0.1:PORT` (`MESHTRACE_COLLECTOR`), as they do without capture. The listener
/// is made in the pod (its binder); its connections run on event loops of this process's own
/// namespace, so the connection onward reaches the collector on this namespace's loopback.
enum PortRelay {
    static func start(port: Int, binder: any ListenerBinder, group: any EventLoopGroup) async throws -> any Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: port)
                    .flatMap { outbound in
                        let (a, b) = RelayHandler.pair()
                        // Reading starts once both ends are glued: nothing read before is lost.
                        return inbound.pipeline.addHandler(a).and(outbound.pipeline.addHandler(b)).flatMap { _ in
                            inbound.setOption(.autoRead, value: true)
                        }
                    }
            }
        let handover = RelayBootstrap(bootstrap: bootstrap)
        return try await binder.bind { handover.bootstrap.bind(host: "127.0.0.1", port: port) }
    }
}

/// Built here, bound once on the binder's thread.
private struct RelayBootstrap: @unchecked Sendable {
    let bootstrap: ServerBootstrap
}

/// Copies one channel's bytes to its partner, reading again once they are written, and closes
/// the partner when its side closes.
private final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair() -> (RelayHandler, RelayHandler) {
        let a = RelayHandler()
        let b = RelayHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.send(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeRead() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func send(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    private func resumeRead() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
