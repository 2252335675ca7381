import Foundation
import Logging
import NIOCore
import SidecarProxy
import TraceExport
import TraceModel

/// What `startSidecars` brought up, for the step that launches the service processes.
struct StartedSidecars: Sendable {
    /// The outbound listener (`HTTP_PROXY`) of each service's own sidecar.
    var outbound: [String: String] = [:]
    /// service -> upstream -> URL of the per-upstream egress listener (`<NAME>_URL`).
    var egress: [String: [String: String]] = [:]
    var gatewayURL: String?
}

extension MeshCore {
    /// Starts every sidecar (one per service), then the gateway, then the per-upstream egress
    /// listeners. Each is added to `state` as soon as it listens, so a failure part way can
    /// stop exactly what had started.
    func startSidecars(exporter: SpanExportTarget, group: any EventLoopGroup) async throws -> StartedSidecars {
        var started = StartedSidecars()
        // 1. One sidecar per service: inbound in front of the app, outbound for its calls.
        //    With `replicas: N`, N of them, each with its own app port.
        for service in file.services {
            for instance in service.instanceNames {
                let appPort = service.port != 0 ? service.port : try PortAllocator.freePort()
                let config = sidecarConfiguration(for: service, appPort: appPort)
                let server = try await startSidecar(config, exporter: exporter, group: group, appPort: appPort, service: service, instance: instance)
                started.outbound[instance] = server.addresses.outbound
            }
        }
        // 2. Now every inbound address is known: tell each outbound listener where services live,
        //    a service's replicas as its endpoints (balanced by each caller's sidecar).
        let registry = Self.registry(state.all)
        for entry in state.all { entry.box.update { $0.upstreams = registry } }
        try state.apply(file.telemetry)  // custom tags parsed once, the same way live changes are

        // 3. The gateway: an edge sidecar that starts traces.
        if let gateway = file.gateway {
            let config = gatewayConfiguration(gateway, registry: registry)
            let server = try await startSidecar(config, exporter: exporter, group: group, appPort: 0, service: nil)
            started.gatewayURL = server.addresses.gateway.map { "http://\($0)" }
        }

        // 3b. Per-upstream egress listeners, for clients that ignore HTTP_PROXY: `<NAME>_URL`
        //     points at a listener whose only destination is that upstream. It shares the
        //     service's telemetry, so its CLIENT spans belong to the calling service.
        var quietLogger = logger
        quietLogger.logLevel = .warning
        for service in file.services {
            for instance in service.instanceNames {
                guard let entry = state.all.first(where: { $0.name == instance }) else { continue }
                for upstream in service.upstreams {
                    var config = entry.box.config
                    config.appPort = nil
                    config.inboundPort = -1
                    config.outboundPort = 0
                    config.metricsPort = -1
                    config.adminPort = -1
                    config.defaultUpstream = upstream
                    let box = ConfigurationBox(config)
                    // Same in-flight tracker as the service's own sidecar: parent inference must see the
                    // inbound requests whichever listener the app calls out through.
                    let server = SidecarServer(configuration: box, telemetry: entry.telemetry, logger: quietLogger, group: group,
                                               inference: entry.server.inference, endpointSets: entry.server.endpointSets)
                    try await server.start()
                    state.addEgress(MeshState.Egress(service: instance, upstream: upstream, box: box, server: server))
                    if let address = server.addresses.outbound { started.egress[instance, default: [:]][upstream] = "http://\(address)" }
                }
            }
        }
        return started
    }

    /// The settings every sidecar of the mesh shares: telemetry from mesh.yaml, metrics on a
    /// free port, and no admin listener (the control plane answers proxy-config for all).
    func baseConfiguration(name: String) -> SidecarConfiguration {
        let spec = file.telemetry
        var config = SidecarConfiguration()
        config.serviceName = name
        config.metricsPort = 0
        config.adminPort = -1
        config.samplingPercent = spec.samplingPercent
        config.propagation = spec.propagation
        config.healthCheckPaths = spec.excludePaths
        config.inferParent = spec.inferParent
        config.logLevel = "warning"
        return config
    }

    /// The gateway: an edge sidecar that starts traces, routing to `registry`.
    func gatewayConfiguration(_ gateway: GatewaySpec, registry: [UpstreamService]) -> SidecarConfiguration {
        var config = baseConfiguration(name: "gateway")
        config.inboundPort = -1
        config.outboundPort = -1
        config.gatewayPort = gateway.port
        config.metricsPort = gateway.metricsPort
        config.routes = gateway.routes.map { GatewayRoute(prefix: $0.prefix, service: $0.service) }
        config.upstreams = registry
        // The gateway sees every service's paths: it names them by every service's routes.
        config.routeTemplates = Self.templates(file.services.flatMap(\.routes))
        return config
    }

    /// One service's sidecar: where it listens and where its app is. The place to change
    /// when a service's traffic reaches its sidecar another way (a capture mode).
    func sidecarConfiguration(for service: ServiceSpec, appPort: Int) -> SidecarConfiguration {
        var config = baseConfiguration(name: service.name)
        config.inboundPort = 0
        config.appPort = appPort
        config.outboundPort = 0
        config.outboundPolicy = .allowAny
        config.routeTemplates = Self.templates(service.routes)
        config.metricsPort = service.metricsPort
        if file.capture == .netns {
            // The app's traffic reaches the sidecar through the pod's capture rules: the capture
            // listeners only, in the pod (the health port is the mesh's own probe's business).
            config.inboundPort = -1
            config.appPort = nil
            config.outboundPort = -1
            config.capture.enabled = true
            config.capture.healthPort = -1
        }
        return config
    }

    /// Parsed templates; the parser has checked each, so none is dropped here in practice.
    static func templates(_ routes: [String]) -> [RouteTemplate] {
        var out: [RouteTemplate] = []
        for route in routes {
            if let template = try? RouteTemplate(route), !out.contains(template) { out.append(template) }
        }
        return out
    }

    /// - Parameters:
    ///   - group: telemetry's loops (and the proxy's, unless `proxyGroup` is given);
    ///   - proxyGroup, binder: `capture: netns`: the proxy's loops and listeners in its pod.
    func startSidecar(_ config: SidecarConfiguration, exporter: SpanExportTarget, group: any EventLoopGroup, appPort: Int,
                      service: ServiceSpec?, instance: String? = nil, proxyGroup: (any EventLoopGroup)? = nil,
                      binder: any ListenerBinder = CurrentNamespaceBinder()) async throws -> SidecarServer {
        var config = config
        config.exporter.kind = exporter.kind.rawValue
        config.exporter.endpoint = exporter.url  // so proxy-config shows where spans go
        let box = ConfigurationBox(config)
        var sidecarLogger = logger
        sidecarLogger.logLevel = .warning
        let telemetry = SidecarTelemetry(
            configuration: TelemetryConfiguration(
                serviceName: config.serviceName, exporter: exporter, naming: SpanNaming(templates: RouteTemplates(config.routeTemplates))),
            group: group, logger: sidecarLogger, samplingPercent: { box.snapshot.config.samplingPercent })
        telemetry.start()
        let server = SidecarServer(configuration: box, telemetry: telemetry, logger: sidecarLogger, group: proxyGroup ?? group, binder: binder)
        do {
            try await server.start()
        } catch {
            await telemetry.flush()
            let setting = config.gatewayPort.map { " (\(options.settingNames["gateway.port"] ?? "gateway.port") \($0))" } ?? ""
            throw MeshStartError("the sidecar of \(config.serviceName) cannot listen\(setting): \(error)")
        }
        state.add(MeshState.Entry(name: instance ?? config.serviceName, service: config.serviceName, appPort: appPort, healthPath: service?.healthPath, box: box,
                                  telemetry: telemetry, server: server, supervisor: nil, healthy: service == nil))
        return server
    }

    /// One upstream per service, its replicas' inbound listeners as endpoints, in start order.
    static func registry(_ entries: [MeshState.Entry]) -> [UpstreamService] {
        var order: [String] = []
        var endpoints: [String: [UpstreamEndpoint]] = [:]
        for entry in entries {
            guard let inbound = entry.server.addresses.inbound, let (host, port) = hostPort(inbound) else { continue }
            if endpoints[entry.service] == nil { order.append(entry.service) }
            endpoints[entry.service, default: []].append(UpstreamEndpoint(host: host, port: port))
        }
        return order.compactMap { name in endpoints[name].map { UpstreamService(name: name, endpoints: $0) } }
    }

    static func hostPort(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
        return (String(address[..<colon]), port)
    }
}
