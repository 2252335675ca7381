"""The sidecar's OTLP/gRPC export (its own unary call over swift-nio-http2) read by a server we
did not write: a grpcio server that parses each request with OpenTelemetry's generated classes,
answers UNAVAILABLE with RetryInfo when told to, and sees which connections the calls came on.
Then, end to end, the hybrid set-up: a Python service instrumented with the OpenTelemetry SDK
exports its own spans over gRPC while its sidecar exports to Zipkin, and both land in one trace."""
import http.server
import threading
import time
import uuid
from concurrent import futures

import grpc
import requests
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from conftest import BINARY, wait_until
from sidecar.procs import EchoApp, Sidecar

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class GRPCSink:
    """A grpcio TraceService: keeps the spans, the peers they came from and the call times;
    the first `unavailable` calls are refused with UNAVAILABLE and a 1 s RetryInfo."""

    def __init__(self, unavailable=0):
        self.spans = []
        self.peers = set()
        self.calls = []  # (monotonic time, outcome)
        self.unavailable = unavailable
        self.lock = threading.Lock()
        handler = grpc.unary_unary_rpc_method_handler(
            self.export, request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)
        generic = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[generic])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def export(self, request, context):
        with self.lock:
            self.peers.add(context.peer())
            if self.unavailable > 0:
                self.unavailable -= 1
                self.calls.append((time.monotonic(), "UNAVAILABLE"))
                info = error_details_pb2.RetryInfo()
                info.retry_delay.seconds = 1
                status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="sink is busy")
                status.details.add().Pack(info)
                context.set_trailing_metadata([("grpc-status-details-bin", status.SerializeToString())])
                context.abort(grpc.StatusCode.UNAVAILABLE, "sink is busy")
            self.calls.append((time.monotonic(), "OK"))
            for rs in request.resource_spans:
                service = next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), None)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append((service, span))
        return trace_service_pb2.ExportTraceServiceResponse()

    def close(self):
        self.server.stop(grace=None)


def send(sidecar, trace_ids, count, path="/orders/1"):
    for _ in range(count):
        tid = uuid.uuid4().hex
        trace_ids.append(tid)
        r = requests.get(sidecar.url("inbound", path), headers={"traceparent": f"00-{tid}-{uuid.uuid4().hex[:16]}-01"}, timeout=10)
        assert r.status_code == 200


def test_sidecar_exports_over_one_grpc_connection_and_backs_off_on_unavailable(procs):
    sink = GRPCSink(unavailable=2)
    try:
        app = EchoApp()
        procs(app)
        sidecar = Sidecar(BINARY, "--service", "orders", "--app-port", str(app.port), "--outbound-port", "-1",
                          "--collector", f"grpc://127.0.0.1:{sink.port}",
                          "--export-batch-size", "4", "--export-flush-interval", "200ms")
        procs(sidecar)
        trace_ids = []
        send(sidecar, trace_ids, 12)
        wait_until(lambda: len({s.trace_id.hex() for _, s in sink.spans}) >= 12, timeout=30, message="12 spans at the gRPC sink")
        assert sorted({s.trace_id.hex() for _, s in sink.spans}) == sorted(trace_ids)
        for service, span in sink.spans:
            assert service == "orders" and span.kind == span.SPAN_KIND_SERVER and span.name == "GET /orders/{id}"
        outcomes = [o for _, o in sink.calls]
        assert outcomes[:2] == ["UNAVAILABLE", "UNAVAILABLE"] and outcomes[2] == "OK", outcomes
        # RetryInfo said 1 s: the sidecar waited at least that long before each retry.
        times = [t for t, _ in sink.calls]
        assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9, times[:3]
        assert len(sink.calls) >= 4, "batches of at most 4 spans"
        assert len(sink.peers) == 1, f"one HTTP/2 connection for every call, got {sink.peers}"
    finally:
        sink.close()


class SDKService:
    """An HTTP service instrumented with the OpenTelemetry SDK by hand: it continues the trace
    from `traceparent` with a SERVER span and exports over OTLP/gRPC."""

    def __init__(self, endpoint):
        self.provider = TracerProvider(resource=Resource.create({"service.name": "py-inventory"}))
        self.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        tracer = self.provider.get_tracer("sdk-service")
        propagator = TraceContextTextMapPropagator()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ctx = propagator.extract({k.lower(): v for k, v in self.headers.items()})
                with tracer.start_as_current_span("GET /stock", context=ctx, kind=SpanKind.SERVER) as span:
                    span.set_attribute("stock.level", 7)
                    body = b"ok"
                    self.send_response(200)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.provider.shutdown()


def test_sdk_service_over_grpc_and_its_sidecar_over_zipkin_join_one_trace(procs, start_collector):
    collector = start_collector(extra_args=["--storage", "memory"])
    service = SDKService(f"http://127.0.0.1:{collector.ports['otlp_grpc']}")
    try:
        sidecar = Sidecar(BINARY, "--service", "py-inventory", "--app-port", str(service.port), "--outbound-port", "-1",
                          "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans",
                          "--export-flush-interval", "200ms")
        procs(sidecar)
        tid = uuid.uuid4().hex
        r = requests.get(sidecar.url("inbound", "/stock"), headers={"traceparent": f"00-{tid}-{uuid.uuid4().hex[:16]}-01"}, timeout=10)
        assert r.status_code == 200 and r.text == "ok"

        def both():
            got = requests.get(collector.url("zipkin", f"/api/v2/trace/{tid}"), timeout=5)
            spans = got.json() if got.status_code == 200 else []
            return spans if len(spans) >= 2 else None

        spans = wait_until(both, timeout=30, message="the sidecar's and the SDK's spans in one trace")
        assert len(spans) == 2
        proxy = next(s for s in spans if s["tags"].get("component") == "proxy")
        app = next(s for s in spans if s is not proxy)
        assert app["name"] == "get /stock" or app["name"] == "GET /stock"
        assert app["tags"]["stock.level"] == "7"
        # The app's SERVER span is the child of the sidecar's inbound span: the sidecar passed its
        # own span id on in traceparent, and the SDK continued from it.
        assert app["parentId"] == proxy["id"]
        metrics = requests.get(collector.url("admin", "/metrics"), timeout=5).text
        assert 'meshtrace_collector_spans_accepted_total{protocol="otlp_grpc"} 1' in metrics
    finally:
        service.close()
