"""The sidecar's OTLP/HTTP export read by code we did not write: batches go to a small HTTP
server that parses each body with OpenTelemetry's own generated protobuf classes
(`opentelemetry-proto`), and, end to end, to a `meshtrace collector`. The sidecar builds a batch
by concatenating one-span export requests (protobuf merges them), so this checks that a stock
protobuf parser sees every span, with its attributes, and nothing else."""
import http.server
import threading
import uuid

import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import BINARY, wait_until
from sidecar.procs import EchoApp, Sidecar


class OTLPSink:
    """Accepts POST /v1/traces, parses it as ExportTraceServiceRequest, keeps the spans."""

    def __init__(self):
        self.spans = []  # (resource attributes, span)
        self.bodies = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                sink.content_type = self.headers.get("content-type")
                for rs in request.resource_spans:
                    resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            sink.spans.append((resource, span))
                sink.bodies += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value") else \
            v.double_value if v.HasField("double_value") else v.bool_value
    return out


def test_otlp_batches_parse_with_the_official_protobuf_classes(procs):
    sink = OTLPSink()
    try:
        app = EchoApp()
        procs(app)
        sidecar = Sidecar(BINARY, "--service", "orders", "--app-port", str(app.port), "--outbound-port", "-1",
                          "--exporter", "otlp", "--collector", f"http://127.0.0.1:{sink.port}/v1/traces",
                          "--export-batch-size", "4", "--export-flush-interval", "200ms")
        procs(sidecar)
        trace_ids = []
        for i in range(10):
            tid = uuid.uuid4().hex
            trace_ids.append(tid)
            r = requests.get(f"http://127.0.0.1:{sidecar.ports['inbound']}/orders/{i}",
                             headers={"traceparent": f"00-{tid}-{uuid.uuid4().hex[:16]}-01"}, timeout=10)
            assert r.status_code == 200
        wait_until(lambda: len(sink.spans) >= 10, timeout=20, message="10 spans at the OTLP sink")
        assert len(sink.spans) == 10, "each span exactly once"
        assert sink.bodies >= 3, "batches of at most 4 spans"
        assert sink.content_type == "application/x-protobuf"
        assert sorted(s.trace_id.hex() for _, s in sink.spans) == sorted(trace_ids)
        for resource, span in sink.spans:
            assert resource["service.name"] == "orders"
            assert span.kind == span.SPAN_KIND_SERVER
            assert span.name == "GET /orders/{id}"
            a = attrs(span)
            assert a["http.response.status_code"] == 200
            assert a["http.request.method"] == "GET"
            assert a["sampling.rate"] == 1.0
            assert a["component"] == "proxy"
            assert span.end_time_unix_nano > span.start_time_unix_nano > 0
    finally:
        sink.close()


def test_otlp_export_end_to_end_into_the_collector(procs, start_collector):
    collector = start_collector(extra_args=["--storage", "memory"])
    app = EchoApp()
    procs(app)
    sidecar = Sidecar(BINARY, "--service", "payments", "--app-port", str(app.port), "--outbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{collector.ports['otlp']}/v1/traces")
    procs(sidecar)
    tid = uuid.uuid4().hex
    r = requests.post(f"http://127.0.0.1:{sidecar.ports['inbound']}/pay", data=b"x" * 100,
                      headers={"traceparent": f"00-{tid}-{uuid.uuid4().hex[:16]}-01"}, timeout=10)
    assert r.status_code == 200

    def trace():
        got = requests.get(collector.url("zipkin", f"/api/v2/trace/{tid}"), timeout=5)
        return got.json() if got.status_code == 200 and got.json() else None

    spans = wait_until(trace, timeout=20, message="the trace in the collector")
    assert len(spans) == 1
    span = spans[0]
    assert span["localEndpoint"]["serviceName"] == "payments"
    assert span["kind"] == "SERVER"
    assert span["tags"]["http.request.body.size"] == "100"
