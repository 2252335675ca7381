"""Interop with clients we did not write: the OpenTelemetry Python SDK's OTLP/HTTP and Zipkin
JSON exporters send traces; both query APIs must give back the same ids, parents, names,
kinds, attributes and timestamps."""
import time

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from conftest import get_json, wait_until


def make_tracer(service, exporter):
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("interop-test", "1.0")


def emit_trace(tracer):
    """A SERVER root with a CLIENT child and an INTERNAL grandchild; returns the finished spans' data."""
    root = tracer.start_span("GET /Checkout/{id}", kind=SpanKind.SERVER, attributes={
        "http.method": "GET", "http.status_code": 200, "ratio": 0.25, "cached": True, "tags": ["a", "b"]})
    ctx = set_span_in_context(root)
    child = tracer.start_span("call Inventory", kind=SpanKind.CLIENT, context=ctx, attributes={"peer.service": "inventory"})
    grand = tracer.start_span("compute", kind=SpanKind.INTERNAL, context=set_span_in_context(child))
    grand.add_event("cache miss", {"key": "sku-1"})
    grand.set_status(Status(StatusCode.ERROR, "boom"))
    grand.end()
    child.end()
    root.end()
    return root, child, grand


def hexid(n, width):
    return format(n, "0%dx" % width)


def check_jaeger(collector, service, spans, expect_events=True):
    root, child, grand = spans
    trace_id = hexid(root.get_span_context().trace_id, 32)
    body = get_json(collector.url("query", f"/api/traces/{trace_id}"))
    assert body["errors"] is None
    [trace] = body["data"]
    assert trace["traceID"] == trace_id
    by_id = {s["spanID"]: s for s in trace["spans"]}
    assert set(by_id) == {hexid(s.get_span_context().span_id, 16) for s in spans}
    for s in spans:
        j = by_id[hexid(s.get_span_context().span_id, 16)]
        assert j["operationName"] == s.name
        assert j["startTime"] == s.start_time // 1000
        assert abs(j["duration"] - (s.end_time - s.start_time) / 1000) <= 1
        refs = j["references"]
        if s.parent is None:
            assert refs == []
        else:
            assert refs == [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": hexid(s.parent.span_id, 16)}]
        process = trace["processes"][j["processID"]]
        assert process["serviceName"] == service
    tags = {t["key"]: t for t in by_id[hexid(root.get_span_context().span_id, 16)]["tags"]}
    assert tags["span.kind"]["value"] == "server"
    assert tags["http.method"] == {"key": "http.method", "type": "string", "value": "GET"}
    assert tags["http.status_code"]["type"] == "int64" and tags["http.status_code"]["value"] == 200
    assert tags["ratio"]["type"] == "float64" and tags["ratio"]["value"] == 0.25
    assert tags["cached"]["type"] == "bool" and tags["cached"]["value"] is True
    ctags = {t["key"]: t["value"] for t in by_id[hexid(child.get_span_context().span_id, 16)]["tags"]}
    assert ctags["span.kind"] == "client"
    gj = by_id[hexid(grand.get_span_context().span_id, 16)]
    gtags = {t["key"]: t["value"] for t in gj["tags"]}
    assert gtags.get("error") in (True, "true"), gtags
    if expect_events:
        assert gj["logs"], gj
        fields = {f["key"]: f["value"] for f in gj["logs"][0]["fields"]}
        assert fields["event"] == "cache miss"
        assert fields["key"] == "sku-1"


def check_zipkin(collector, service, spans, time_tolerance_us=0):
    root, child, grand = spans
    trace_id = hexid(root.get_span_context().trace_id, 32)
    zspans = get_json(collector.url("zipkin", f"/api/v2/trace/{trace_id}"))
    by_id = {s["id"]: s for s in zspans}
    assert len(by_id) == 3
    r = by_id[hexid(root.get_span_context().span_id, 16)]
    assert r["traceId"] == trace_id and "parentId" not in r
    assert r["kind"] == "SERVER"
    assert r["name"] == root.name
    assert r["localEndpoint"]["serviceName"] == service
    assert abs(r["timestamp"] - root.start_time // 1000) <= time_tolerance_us
    assert r["tags"]["http.method"] == "GET"
    c = by_id[hexid(child.get_span_context().span_id, 16)]
    assert c["kind"] == "CLIENT" and c["parentId"] == r["id"]
    g = by_id[hexid(grand.get_span_context().span_id, 16)]
    assert "kind" not in g and g["parentId"] == c["id"]
    assert "error" in g["tags"]


def test_otlp_proto_exporter_round_trip(collector):
    exporter = OTLPSpanExporter(endpoint=collector.url("otlp", "/v1/traces"))
    provider, tracer = make_tracer("checkout", exporter)
    spans = emit_trace(tracer)
    provider.shutdown()
    check_jaeger(collector, "checkout", spans)
    check_zipkin(collector, "checkout", spans)


def test_otlp_gzip_exporter_round_trip(collector):
    exporter = OTLPSpanExporter(endpoint=collector.url("otlp", "/v1/traces"), compression=Compression.Gzip)
    provider, tracer = make_tracer("checkout-gz", exporter)
    spans = emit_trace(tracer)
    provider.shutdown()
    check_jaeger(collector, "checkout-gz", spans)


def test_zipkin_json_exporter_round_trip(collector):
    exporter = ZipkinExporter(endpoint=collector.url("zipkin", "/api/v2/spans"))
    provider, tracer = make_tracer("inventory", exporter)
    spans = emit_trace(tracer)
    provider.shutdown()
    # Zipkin JSON turns every attribute into a string tag, so only names/ids/parents/kinds are typed,
    # and the exporter rounds nanoseconds to the nearest microsecond itself.
    root, child, grand = spans
    trace_id = hexid(root.get_span_context().trace_id, 32)
    body = get_json(collector.url("query", f"/api/traces/{trace_id}"))
    [trace] = body["data"]
    by_id = {s["spanID"]: s for s in trace["spans"]}
    assert len(by_id) == 3
    for s in spans:
        j = by_id[hexid(s.get_span_context().span_id, 16)]
        assert j["operationName"] == s.name
        assert abs(j["startTime"] - s.start_time / 1000) <= 1
        assert trace["processes"][j["processID"]]["serviceName"] == "inventory"
    check_zipkin(collector, "inventory", spans, time_tolerance_us=1)
    g = by_id[hexid(grand.get_span_context().span_id, 16)]
    assert g["logs"] and g["logs"][0]["fields"][0]["value"] == "cache miss"


def test_search_services_operations_and_dependencies(collector):
    exporter = OTLPSpanExporter(endpoint=collector.url("otlp", "/v1/traces"))
    frontend_provider, frontend = make_tracer("frontend", exporter)
    backend_provider, backend = make_tracer("backend", OTLPSpanExporter(endpoint=collector.url("otlp", "/v1/traces")))
    # frontend SERVER -> frontend CLIENT -> backend SERVER (the backend joins the same trace).
    root = frontend.start_span("GET /", kind=SpanKind.SERVER, attributes={"http.method": "GET"})
    client = frontend.start_span("GET backend", kind=SpanKind.CLIENT, context=set_span_in_context(root))
    server = backend.start_span("GET /work", kind=SpanKind.SERVER, context=set_span_in_context(client),
                                attributes={"http.status_code": 500})
    server.set_status(Status(StatusCode.ERROR))
    server.end()
    client.end()
    root.end()
    frontend_provider.shutdown()
    backend_provider.shutdown()
    trace_id = hexid(root.get_span_context().trace_id, 32)

    services = get_json(collector.url("query", "/api/services"))
    assert {"frontend", "backend"} <= set(services["data"])
    assert services["total"] == len(services["data"])
    assert set(get_json(collector.url("zipkin", "/api/v2/services"))) >= {"frontend", "backend"}

    ops = get_json(collector.url("query", "/api/operations"), service="frontend")["data"]
    assert {"name": "GET /", "spanKind": "server"} in ops
    assert {"name": "GET backend", "spanKind": "client"} in ops
    server_ops = get_json(collector.url("query", "/api/operations"), service="frontend", spanKind="server")["data"]
    assert server_ops == [{"name": "GET /", "spanKind": "server"}]
    assert get_json(collector.url("query", "/api/services/backend/operations"))["data"] == ["GET /work"]
    assert get_json(collector.url("zipkin", "/api/v2/spans"), serviceName="backend") == ["GET /work"]

    found = get_json(collector.url("query", "/api/traces"), service="backend", tags='{"http.status_code":"500"}', limit=20)
    assert [t["traceID"] for t in found["data"]] == [trace_id]
    none = get_json(collector.url("query", "/api/traces"), service="backend", tags='{"http.status_code":"404"}')
    assert none["data"] == []
    by_op = get_json(collector.url("query", "/api/traces"), service="frontend", operation="GET /", lookback="1h")
    assert trace_id in [t["traceID"] for t in by_op["data"]]
    slow = get_json(collector.url("query", "/api/traces"), service="frontend", minDuration="1h")
    assert slow["data"] == []

    ztraces = get_json(collector.url("zipkin", "/api/v2/traces"), serviceName="backend", annotationQuery="http.status_code=500")
    assert [t[0]["traceId"] for t in ztraces] == [trace_id]

    end_ms = int(time.time() * 1000) + 1000
    deps = get_json(collector.url("query", "/api/dependencies"), endTs=end_ms, lookback=3_600_000)["data"]
    assert {"parent": "frontend", "child": "backend", "callCount": 1, "errorCount": 1} in deps
    zdeps = get_json(collector.url("zipkin", "/api/v2/dependencies"), endTs=end_ms, lookback=3_600_000)
    assert {"parent": "frontend", "child": "backend", "callCount": 1, "errorCount": 1} in zdeps

    many = get_json(collector.url("zipkin", "/api/v2/traceMany"), traceIds=f"{trace_id},{'1' * 32}")
    assert len(many) == 1 and many[0][0]["traceId"] == trace_id
