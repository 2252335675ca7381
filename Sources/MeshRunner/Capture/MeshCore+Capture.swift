import CaptureRules
import Foundation
import NIOCore
import NIOPosix
import SidecarProxy
import Synchronization
import TraceExport

#if canImport(Glibc)
import Glibc
#endif

/// `capture: netns`: what the mesh made for its pods, so that stopping (or a failed start)
/// removes exactly that: relays, event loops, namespace threads, then the namespaces.
final class CapturedPods: Sendable {
    struct Pod: Sendable {
        var pod: PodNetwork.Pod
        var thread: NamespaceThread
        var group: MultiThreadedEventLoopGroup
    }

    private struct State {
        var network: PodNetwork?
        var pods: [String: Pod] = [:]
        var threads: [NamespaceThread] = []
        var groups: [MultiThreadedEventLoopGroup] = []
        var channels: [any Channel] = []
    }

    private let state = Mutex(State())

    func set(_ network: PodNetwork) { state.withLock { $0.network = network } }
    var network: PodNetwork? { state.withLock { $0.network } }
    func pod(_ service: String) -> Pod? { state.withLock { $0.pods[service] } }

    func add(_ pod: Pod) {
        state.withLock {
            $0.pods[pod.pod.service] = pod
            $0.threads.append(pod.thread)
            $0.groups.append(pod.group)
        }
    }

    func add(thread: NamespaceThread, group: MultiThreadedEventLoopGroup) {
        state.withLock {
            $0.threads.append(thread)
            $0.groups.append(group)
        }
    }

    func add(_ channel: any Channel) { state.withLock { $0.channels.append(channel) } }

    /// After the sidecars have stopped: everything the pods were made of, gone.
    func teardown() async {
        let taken = state.withLock { s -> State in
            defer { s = State() }
            return s
        }
        for channel in taken.channels { try? await channel.close() }
        for group in taken.groups { try? await group.shutdownGracefully() }
        for thread in taken.threads { thread.stop() }
        taken.network?.remove()
    }
}

/// Who the apps run as in their pods: not the mesh's own uid, which the capture rules leave
/// uncaptured (the sidecars run in this process). The user who ran `sudo`, else `nobody`.
struct AppIdentity: Equatable {
    var uid: UInt32
    var gid: UInt32

    static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) -> AppIdentity {
        if let uid = environment["SUDO_UID"].flatMap(UInt32.init), uid != 0 {
            return AppIdentity(uid: uid, gid: environment["SUDO_GID"].flatMap(UInt32.init) ?? uid)
        }
        return AppIdentity(uid: 65534, gid: 65534)
    }
}

extension MeshCore {
    /// Each service's app listens on this port in its own namespace unless mesh.yaml names one.
    static let podAppPort = 8080

    func appPort(_ service: ServiceSpec) -> Int { service.port != 0 ? service.port : Self.podAppPort }

    /// What `up` says when `capture: netns` cannot run here (`PodNetwork.unavailable()`'s reason).
    static func captureUnavailable(_ reason: String) -> String {
        "capture: netns \(reason); run `sudo meshtrace up`, or remove `capture: netns` to trace through HTTP_PROXY instead"
    }

    /// The pods, their capture rules, one sidecar per pod listening and connecting inside it (its
    /// telemetry exports from here), a relay in each pod to the collector for app spans, and the
    /// gateway with its loops on the bridge. Each part is recorded as it comes up, so a failure
    /// part way takes down exactly what had started.
    func startCapturedSidecars(exporter: SpanExportTarget, group: any EventLoopGroup) async throws -> StartedSidecars {
        if let reason = PodNetwork.unavailable() {
            throw MeshStartError(Self.captureUnavailable(reason))
        }
        let removed = PodNetwork.removeLeftovers(mesh: file.name)
        if !removed.isEmpty {
            logger.notice("removed network namespaces a previous run of this mesh left: \(removed.joined(separator: ", "))")
        }
        let network: PodNetwork
        do {
            network = try PodNetwork.create(mesh: file.name, services: file.services.map(\.name))
        } catch {
            throw MeshStartError("capture: netns: cannot make the pods' namespaces: \(error)")
        }
        captured.set(network)
        for pod in network.pods {
            do {
                _ = try PodCaptureRules.install(in: pod.namespace, proxyUID: geteuid())
            } catch {
                throw MeshStartError("capture: netns: cannot install the capture rules for \(pod.service): \(error)")
            }
        }
        let registry = file.services.compactMap { service in
            network.pod(service.name).map { UpstreamService(name: service.name, host: $0.address, port: appPort(service)) }
        }
        let collectorPort = URLComponents(string: collectorURL)?.port
        for service in file.services {
            guard let pod = network.pod(service.name) else { continue }
            let thread = try NamespaceThread(namespace: pod.namespace)
            let podGroup: MultiThreadedEventLoopGroup
            do {
                podGroup = try await thread.makeEventLoopGroup()
            } catch {
                thread.stop()
                throw error
            }
            captured.add(CapturedPods.Pod(pod: pod, thread: thread, group: podGroup))
            var config = sidecarConfiguration(for: service, appPort: appPort(service))
            config.upstreams = registry
            let binder = NamespaceBinder(thread: thread)
            _ = try await startSidecar(config, exporter: exporter, group: group, appPort: appPort(service), service: service,
                                       proxyGroup: podGroup, binder: binder)
            if let collectorPort {
                do {
                    captured.add(try await PortRelay.start(port: collectorPort, binder: binder, group: group))
                } catch {
                    throw MeshStartError("capture: netns: cannot relay the collector's port \(collectorPort) into \(service.name)'s namespace: \(error)")
                }
            }
        }
        try state.apply(file.telemetry)  // custom tags parsed once, the same way live changes are
        var started = StartedSidecars()
        if let gateway = file.gateway {
            // Listens here; its loops live on the bridge, where every pod's address is reachable.
            let thread = try NamespaceThread(namespace: network.switchNamespace)
            let bridgeGroup = try await thread.makeEventLoopGroup()
            captured.add(thread: thread, group: bridgeGroup)
            let server = try await startSidecar(gatewayConfiguration(gateway, registry: registry), exporter: exporter, group: group,
                                                appPort: 0, service: nil, proxyGroup: bridgeGroup)
            started.gatewayURL = server.addresses.gateway.map { "http://\($0)" }
        }
        return started
    }

    /// A service's process in its pod, as the app's own user, told where its upstreams are by
    /// name (`http://backend:8080`), with no proxy settings.
    func capturedSupervisor(for service: ServiceSpec, printer: LogPrinter, processGuard: MeshGuard?) -> ServiceSupervisor? {
        guard let network = captured.network, let pod = network.pod(service.name) else { return nil }
        let identity = AppIdentity.resolve()
        let port = appPort(service)
        let command = network.command(in: pod, uid: identity.uid, gid: identity.gid, arguments(for: service, port: port))
        return ServiceSupervisor(
            name: service.name, arguments: command, environment: capturedEnvironment(for: service, port: port),
            workingDirectory: service.workingDir, output: printer, logger: logger, processGuard: processGuard)
    }

    func capturedEnvironment(for service: ServiceSpec, port: Int) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.lowercased().hasSuffix("_proxy") }
        env["PORT"] = String(port)
        env["MESHTRACE_SERVICE"] = service.name
        // Relayed into the pod on the same port (`PortRelay`).
        env["MESHTRACE_COLLECTOR"] = collectorURL
        if let level = options.logLevel { env["MESHTRACE_LOG_LEVEL"] = level }
        for upstream in service.upstreams {
            let key = upstream.uppercased().replacingOccurrences(of: "-", with: "_") + "_URL"
            let target = file.service(named: upstream).map(appPort) ?? Self.podAppPort
            env[key] = "http://\(upstream):\(target)"
        }
        for (key, value) in service.env {
            env[key] = value.replacingOccurrences(of: "${PORT}", with: String(port))
                .replacingOccurrences(of: "${MESHTRACE}", with: options.executable)
        }
        return env
    }

    /// The health probe, from inside the service's pod.
    func capturedHealth(of name: String, port: Int, path: String) async -> Bool {
        guard let pod = captured.pod(name) else { return false }
        return (try? await pod.thread.run { HealthProbe.probe(port: port, path: path, timeoutMillis: 1000) }) ?? false
    }
}
