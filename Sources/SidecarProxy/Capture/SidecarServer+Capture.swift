import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Capture mode's listeners: inbound and outbound capture (what `meshtrace iptables` redirects
/// to) and the health port a pod's probes reach. Each captured connection's original destination
/// is read as it is accepted; then `CaptureSniffHandler` finds what it carries and hands it to
/// the proxy (HTTP/1.1, h2c) or to `CapturedTCPRelay` (anything else).
extension SidecarServer {
    struct CaptureChannels {
        var inbound: any Channel
        var outbound: any Channel
        var health: (any Channel)?
    }

    /// Binds the capture listeners (all addresses: inbound REDIRECT delivers to the pod's
    /// address, outbound to 127.0.0.1 or ::1) and the health listener.
    func bindCaptureListeners(_ config: SidecarConfiguration, guard captureGuard: CaptureGuard) async throws -> CaptureChannels {
        let inbound = try await bindCapture(direction: .inbound, port: config.capture.inboundPort, guard: captureGuard)
        do {
            let outbound = try await bindCapture(direction: .outbound, port: config.capture.outboundPort, guard: captureGuard)
            var health: (any Channel)?
            if let port = config.capture.effectiveHealthPort {
                do {
                    health = try await bindAllAddresses { host in
                        try await self.bindSimple(host: host, port: port) { [weak self] head in
                            self?.healthResponse(head) ?? .text("gone\n", status: .serviceUnavailable)
                        }
                    }
                } catch {
                    try? await outbound.close()
                    throw error
                }
            }
            return CaptureChannels(inbound: inbound, outbound: outbound, health: health)
        } catch {
            try? await inbound.close()
            throw error
        }
    }

    /// `/healthz/ready`, as Istio's 15021: ready once every listener is bound, 503 while draining.
    func healthResponse(_ head: HTTPRequestHead) -> SimpleResponse {
        switch TraceDecision.pathOnly(head.uri) {
        case "/healthz/ready", "/ready":
            return isDraining ? .text("DRAINING\n", status: .serviceUnavailable) : .text("LIVE\n")
        default:
            return .text("not found; readiness is at /healthz/ready\n", status: .notFound)
        }
    }

    private func bindCapture(direction: ProxyDirection, port: Int, guard captureGuard: CaptureGuard) async throws -> any Channel {
        let runtime = makeRuntime(direction)
        let config = configuration.config
        let stats = self.stats
        let logger = self.logger
        let detection = TimeAmount.milliseconds(config.capture.detectionTimeoutMillis)
        return try await bindAllAddresses { host in
            let bootstrap = self.dataPlaneBootstrap { channel in
                // A connection that cannot be placed is closed (the initializer's error closes
                // it), with the reason in the log: never guessed at.
                let destination: CapturedDestination
                do {
                    destination = try Self.originalDestination(of: channel)
                } catch {
                    stats.update { $0.capturedRefused += 1 }
                    logger.warning("closing a captured \(direction.rawValue) connection: cannot read its original destination",
                                   metadata: ["peer": "\(channel.remoteAddress.map(UpstreamPool.describe) ?? "?")", "error": "\(error)"])
                    throw error
                }
                if let reason = captureGuard.refusal(destination, localHost: CapturedDestination.plainIP(channel.localAddress)) {
                    stats.update { $0.capturedRefused += 1 }
                    logger.warning("\(reason)", metadata: ["peer": "\(channel.remoteAddress.map(UpstreamPool.describe) ?? "?")"])
                    throw CaptureRefused(reason: reason)
                }
                let sniffer = CaptureSniffHandler(timeout: detection) { verdict, sync in
                    switch verdict {
                    case .http, .undecided:
                        try SidecarServer.configureProxyPipeline(sync, runtime: runtime, config: config, captured: destination)
                    case .opaque:
                        try sync.addHandler(Self.tcpRelay(runtime: runtime, channel: channel, destination: destination))
                    }
                }
                try channel.pipeline.syncOperations.addHandler(sniffer)
            }
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 0, when: host == "::")
            let handover = BootstrapHandover(bootstrap: bootstrap)
            return try await self.binder.bind { handover.bind(host: host, port: port) }
        }
    }

    static func tcpRelay(runtime: ListenerRuntime, channel: any Channel, destination: CapturedDestination) -> CapturedTCPRelay {
        let snapshot = runtime.configuration.snapshot
        let route = Router.capturedTCPRoute(direction: runtime.direction, destination: destination, snapshot: snapshot)
        let peer = channel.remoteAddress
        // Who is calling, for an inbound connection that carries no mesh headers: the registry
        // entry at the peer's address, as Istio names TCP sources from peer metadata.
        let source: String? = runtime.direction == .inbound
            ? CapturedDestination.plainIP(peer).flatMap { Router.service(atHost: $0, in: snapshot)?.name }
            : snapshot.config.serviceName
        return CapturedTCPRelay(runtime: runtime, route: route, downstreamAddress: peer.map(UpstreamPool.describe), sourceService: source)
    }

    static func originalDestination(of channel: any Channel) throws -> CapturedDestination {
        let address = try channel.pipeline.syncOperations.withUnsafeTransportIfAvailable(of: NIOBSDSocket.Handle.self) { fd in
            try OriginalDestination.read(fd: fd)
        }
        guard let address, let destination = CapturedDestination(address) else {
            throw OriginalDestination.Unreadable(description: "the connection has no socket to ask")
        }
        return destination
    }

    /// Binds `[::]` (both families: IPv4 clients arrive v4-mapped), or `0.0.0.0` where the
    /// namespace has no IPv6.
    private func bindAllAddresses(_ bind: (String) async throws -> any Channel) async throws -> any Channel {
        do {
            return try await bind("::")
        } catch let error as IOError where [EAFNOSUPPORT, EADDRNOTAVAIL].contains(error.errnoCode) {
            return try await bind("0.0.0.0")
        }
    }
}

extension ServerBootstrap {
    /// An option set only when `condition` holds (IPV6_V6ONLY exists on IPv6 sockets only).
    func serverChannelOption<Option: ChannelOption>(_ option: Option, value: Option.Value, when condition: Bool) -> ServerBootstrap {
        condition ? serverChannelOption(option, value: value) : self
    }
}

struct CaptureRefused: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
