"""OTLP/gRPC on the collector, driven by clients we did not write: the OpenTelemetry Python SDK's
gRPC exporter (grpcio underneath) at its defaults apart from the endpoint, and raw grpcio calls
for malformed bytes and a full ingest queue."""
import logging
import os
import random
import signal
import threading
import time

import grpc
import pytest
import requests
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from conftest import get_json, wait_until
from test_otel_sdk_interop import check_jaeger, check_zipkin, emit_trace, hexid, make_tracer

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def grpc_endpoint(collector):
    return f"http://127.0.0.1:{collector.ports['otlp_grpc']}"


def raw_export(collector):
    """TraceService/Export as bytes in, bytes out, so a test controls the exact message."""
    channel = grpc.insecure_channel(f"127.0.0.1:{collector.ports['otlp_grpc']}")
    return channel, channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)


def proto_request(rng, count, service="grpc-raw"):
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    ss = rs.scope_spans.add()
    now = time.time_ns()
    trace_ids = []
    for _ in range(count):
        span = ss.spans.add()
        span.trace_id = rng.randbytes(16)
        span.span_id = rng.randbytes(8)
        span.name = "op"
        span.kind = trace_pb2.Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = now
        span.end_time_unix_nano = now + 1_000_000
        trace_ids.append(span.trace_id.hex())
    return request.SerializeToString(), trace_ids


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip], ids=["plain", "gzip"])
def test_python_sdk_grpc_exporter_round_trip(collector, compression):
    service = "checkout-grpc" + ("-gz" if compression else "")
    exporter = OTLPSpanExporter(endpoint=grpc_endpoint(collector), compression=compression)
    provider, tracer = make_tracer(service, exporter)
    spans = emit_trace(tracer)
    # A span in a trace of its own, linked to the root: links travel as Jaeger FOLLOWS_FROM references.
    linked = tracer.start_span("async follow-up", kind=SpanKind.CONSUMER, links=[Link(spans[0].get_span_context(), {"why": "retry"})],
                               context=Context())
    linked.end()
    provider.shutdown()
    check_jaeger(collector, service, spans)
    check_zipkin(collector, service, spans)
    trace_id = hexid(spans[0].get_span_context().trace_id, 32)
    [trace] = get_json(collector.url("query", f"/api/traces/{hexid(linked.get_span_context().trace_id, 32)}"))["data"]
    [j] = trace["spans"]
    assert j["references"] == [{"refType": "FOLLOWS_FROM", "traceID": trace_id, "spanID": hexid(spans[0].get_span_context().span_id, 16)}]
    metrics = requests.get(collector.url("admin", "/metrics"), timeout=5).text
    assert 'meshtrace_collector_spans_accepted_total{protocol="otlp_grpc"} 4' in metrics


def test_malformed_bytes_are_invalid_argument_with_a_message(collector):
    channel, export = raw_export(collector)
    with channel:
        # Field 1 (resource_spans), length 5, then only two bytes: truncated.
        with pytest.raises(grpc.RpcError) as caught:
            export(b"\x0a\x05\x0a\x03", timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "resource_spans" in caught.value.details() or "truncated" in caught.value.details(), caught.value.details()
        # A span with a bad id is dropped alone and reported, as over HTTP.
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = b"\x01" * 15, b"\x02" * 8, "short id"
        response = ExportTraceServiceResponse.FromString(export(request.SerializeToString(), timeout=10))
        assert response.partial_success.rejected_spans == 1
        assert "traceId: must be 16 bytes, got 15" in response.partial_success.error_message
        # An empty request is a success with nothing to report.
        assert ExportTraceServiceResponse.FromString(export(b"", timeout=10)) == ExportTraceServiceResponse()


def test_oversized_message_is_refused_and_nothing_is_stored(start_collector):
    c = start_collector(extra_args=["--max-message-size", "65536"])
    channel, export = raw_export(c)
    with channel:
        body, trace_ids = proto_request(random.Random(3), 2000)
        assert len(body) > 65536
        with pytest.raises(grpc.RpcError) as caught:
            export(body, timeout=10)
        # grpc-swift refuses a message over maxRequestPayloadSize by resetting the stream, which
        # grpcio reports as CANCELLED; other servers answer RESOURCE_EXHAUSTED. Either way the
        # call fails at once and stores nothing.
        assert caught.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED), caught.value
        small, small_ids = proto_request(random.Random(4), 10)
        export(small, timeout=10)  # the connection and the server carry on
    assert requests.get(c.url("zipkin", f"/api/v2/trace/{small_ids[0]}"), timeout=5).status_code == 200
    assert requests.get(c.url("zipkin", f"/api/v2/trace/{trace_ids[0]}"), timeout=5).status_code == 404


def retry_delay(error):
    """RetryInfo.retry_delay from grpc-status-details-bin, in seconds, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def test_full_queue_is_unavailable_with_retry_info_and_the_sdk_retries(start_collector, caplog):
    c = start_collector(extra_args=["--ingest-queue-capacity", "500"])
    stop = threading.Event()
    outcomes = []
    lock = threading.Lock()

    def flood(seed):
        rng = random.Random(seed)
        channel, export = raw_export(c)
        with channel:
            while not stop.is_set():
                body, _ = proto_request(rng, 300, service="pressure")
                try:
                    export(body, timeout=30)
                    outcome = ("OK", None)
                except grpc.RpcError as e:
                    outcome = (e.code().name, retry_delay(e))
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    caplog.set_level(logging.WARNING, logger="opentelemetry.exporter.otlp.proto.grpc.exporter")
    try:
        wait_until(lambda: any(code == "UNAVAILABLE" for code, _ in outcomes), timeout=60, message="a full queue")
        # The SDK's exporter, sent while the queue is full, retries until its spans are in. Its
        # batch is large (450 of the queue's 500) so that it meets the full queue, not only the
        # flood. Once it has met the full queue (its warning is logged) the flood stops, so its
        # next retry finds room: with six senders still filling the queue, whether a retry lands
        # in a gap is up to the scheduler (on a loaded machine the SDK gave up after its backoff
        # twice in a row), and that is not what this test is about.
        delivered = []
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline, "the SDK never met a full queue"
            provider = TracerProvider(resource=Resource.create({"service.name": "sdk-under-pressure"}))
            tracer = provider.get_tracer("pressure")
            batch = []
            for _ in range(450):
                span = tracer.start_span("burst")
                span.end()
                batch.append(span)
            exporter = OTLPSpanExporter(endpoint=grpc_endpoint(c), timeout=60)
            result = []
            sender = threading.Thread(target=lambda: result.append(exporter.export(batch)))
            sender.start()
            met_full = lambda: any("UNAVAILABLE" in r.getMessage() for r in caplog.records)
            wait_until(lambda: met_full() or not sender.is_alive(), timeout=90, message="the SDK's export to end or meet a full queue")
            if met_full():
                stop.set()
            sender.join(timeout=120)
            assert not sender.is_alive(), "the SDK's export did not end"
            assert result == [SpanExportResult.SUCCESS]
            exporter.shutdown()
            delivered += [hexid(s.get_span_context().trace_id, 32) for s in batch]
            if met_full():
                break
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    codes = {code for code, _ in outcomes}
    assert codes <= {"OK", "UNAVAILABLE"}, codes
    assert all(delay == 1.0 for code, delay in outcomes if code == "UNAVAILABLE")
    for trace_id in delivered:
        assert len(get_json(c.url("zipkin", f"/api/v2/trace/{trace_id}"))) == 1, trace_id


def test_acknowledged_grpc_spans_survive_kill_9(start_collector, tmp_path):
    data = tmp_path / "data"
    c = start_collector(data)
    acked = []
    stop = threading.Event()
    errors = []

    def send():
        rng = random.Random(19)
        channel, export = raw_export(c)
        with channel:
            while not stop.is_set():
                body, trace_ids = proto_request(rng, 50, service="durable-grpc")
                try:
                    export(body, timeout=10)
                except grpc.RpcError as e:
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
                                        grpc.StatusCode.UNKNOWN):
                        errors.append((e.code(), e.details()))
                    if c.proc.poll() is not None:
                        return  # the process died mid-call: that batch was never acknowledged
                    continue
                acked.extend(trace_ids)

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(acked) >= 2000, timeout=60, message="2000 acknowledged spans")
    c.proc.send_signal(signal.SIGKILL)
    c.proc.wait()
    stop.set()
    sender.join(timeout=30)
    assert not errors, errors

    restarted = start_collector(data)
    for trace_id in acked:
        r = requests.get(restarted.url("zipkin", f"/api/v2/trace/{trace_id}"), timeout=10)
        assert r.status_code == 200, f"acknowledged trace {trace_id} lost after kill -9 ({len(acked)} acked)"


def test_port_minus_one_turns_grpc_off(start_collector):
    c = start_collector(extra_args=["--otlp-grpc-port", "-1"])
    assert "otlp_grpc=off" in c.log()
    assert "otlp_grpc" not in c.ports


def test_tls_listener_takes_an_sdk_that_insists_on_tls(start_collector, tmp_path):
    """--otlp-grpc-tls-cert/--otlp-grpc-tls-key: an SDK pointed at https:// (TLS, no `insecure`)
    exports, trusting the collector's certificate; a plaintext client cannot talk to the port."""
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    c = start_collector(extra_args=["--otlp-grpc-tls-cert", str(cert), "--otlp-grpc-tls-key", str(key)])
    assert f"otlp_grpc=https://127.0.0.1:{c.ports['otlp_grpc']}" in c.log()
    exporter = OTLPSpanExporter(endpoint=f"https://127.0.0.1:{c.ports['otlp_grpc']}",
                                credentials=grpc.ssl_channel_credentials(root_certificates=cert.read_bytes()))
    provider, tracer = make_tracer("tls-client", exporter)
    spans = emit_trace(tracer)
    provider.shutdown()
    check_zipkin(c, "tls-client", spans)
    channel, export = raw_export(c)
    with channel, pytest.raises(grpc.RpcError) as caught:
        export(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_flags_are_checked_at_start(tmp_path):
    import subprocess
    from conftest import BINARY
    r = subprocess.run([BINARY, "collector", "--otlp-grpc-tls-cert", str(tmp_path / "missing.pem")], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--otlp-grpc-tls-key" in r.stderr, r.stderr
    r = subprocess.run([BINARY, "collector", "--otlp-grpc-tls-cert", str(tmp_path / "missing.pem"), "--otlp-grpc-tls-key",
                        str(tmp_path / "missing.pem")], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "cannot read" in r.stderr and "missing.pem" in r.stderr, r.stderr
