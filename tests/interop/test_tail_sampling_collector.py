"""`meshtrace collector --sampling-policy FILE` with clients we did not write (the OpenTelemetry
Python SDK's OTLP/HTTP and Zipkin exporters): late spans follow their trace's decision, a
flood of new trace ids at 10x `num_traces` keeps memory bounded and is counted as early
decisions, the policy file reloads live, a broken one stops the start with its line, and two
collectors route every trace to one decider."""
import os
import subprocess
import textwrap

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from conftest import BINARY, wait_until
from tailsampling import metric_sum, metrics_text

ERRORS_ONLY = """
decision_wait: {wait}
num_traces: {num_traces}
decision_cache: {{sampled_cache_size: 1000, non_sampled_cache_size: 1000}}
policies:
  - name: errors
    type: status_code
    status_code: {{status_codes: [ERROR]}}
"""


def write_policy(path, text):
    # Written whole and renamed into place, as editors and ConfigMaps do: the collector never
    # reads half a file.
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(textwrap.dedent(text))
    os.replace(tmp, path)


def tracer_for(service, exporter):
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("tail-interop")


def hexid(n, width=32):
    return format(n, f"0{width}x")


def trace_json(collector, trace_id):
    r = requests.get(collector.url("query", f"/api/traces/{trace_id}"), timeout=10)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()["data"][0]


def test_late_spans_follow_the_decision(start_collector, tmp_path):
    policy = tmp_path / "policy.yaml"
    write_policy(policy, ERRORS_ONLY.format(wait="2s", num_traces=1000))
    c = start_collector(extra_args=["--sampling-policy", str(policy)])
    provider, tracer = tracer_for("shop", OTLPSpanExporter(endpoint=c.url("otlp", "/v1/traces")))

    def trace(error):
        root = tracer.start_span("GET /checkout", kind=SpanKind.SERVER)
        child = tracer.start_span("price", context=set_span_in_context(root))
        child.end()
        if error:
            root.set_status(Status(StatusCode.ERROR, "boom"))
        root.end()  # root in, nothing missing: decided now
        return root

    kept, dropped = trace(error=True), trace(error=False)
    kept_id, dropped_id = hexid(kept.get_span_context().trace_id), hexid(dropped.get_span_context().trace_id)
    # Kept and complete: committed before the export call returned.
    assert len(trace_json(c, kept_id)["spans"]) == 2
    assert trace_json(c, dropped_id) is None

    # Late: a child of each root, ending after the decision. The kept one is stored with the
    # trace's adjusted count; the other is dropped even though it is an error.
    late_kept = tracer.start_span("audit", context=set_span_in_context(kept))
    late_kept.end()
    late_dropped = tracer.start_span("audit", context=set_span_in_context(dropped))
    late_dropped.set_status(Status(StatusCode.ERROR, "late error"))
    late_dropped.end()
    spans = trace_json(c, kept_id)["spans"]
    assert {s["operationName"] for s in spans} == {"GET /checkout", "price", "audit"}
    for s in spans:
        assert {"key": "sampling.adjusted_count", "type": "float64", "value": 1} in s["tags"], s["tags"]
    assert trace_json(c, dropped_id) is None
    text = metrics_text(c.url("admin", ""))
    assert metric_sum(text, "meshtrace_tail_sampling_late_spans_total", decision="sampled") == 1
    assert metric_sum(text, "meshtrace_tail_sampling_late_spans_total", decision="not_sampled") == 1
    assert metric_sum(text, "meshtrace_tail_sampling_decisions_total", trigger="complete") == 2
    provider.shutdown()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_flood_of_new_traces_keeps_memory_bounded_and_counts_early_decisions(start_collector, tmp_path):
    num_traces = 2000
    policy = tmp_path / "policy.yaml"
    # A minute's wait, so no trace is decided by time during the test: every decision counted
    # here is the buffer making room.
    write_policy(policy, ERRORS_ONLY.format(wait="60s", num_traces=num_traces))
    c = start_collector(extra_args=["--sampling-policy", str(policy), "--storage", "memory"])
    url = c.url("otlp", "/v1/traces")
    session = requests.Session()

    def flood(first, count, per_request=200):
        # Each trace: one CLIENT span with a parent that never comes (never complete), ~1 KB.
        payload_attrs = [{"key": f"attr.{k}", "value": {"stringValue": "x" * 60}} for k in range(12)]
        for start in range(first, first + count, per_request):
            spans = [{
                "traceId": hexid(0xF100D << 64 | n), "spanId": hexid(n + 1, 16), "parentSpanId": hexid(0xABC, 16),
                "name": "GET /flood", "kind": 3, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000",
                "attributes": payload_attrs,
            } for n in range(start, min(start + per_request, first + count))]
            body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "flood"}}]},
                                       "scopeSpans": [{"spans": spans}]}]}
            r = session.post(url, json=body, timeout=30)
            assert r.status_code == 200, r.text

    flood(0, 10 * num_traces)
    after_first = rss_kb(c.proc.pid)
    flood(10 * num_traces, 10 * num_traces)
    after_second = rss_kb(c.proc.pid)
    text = metrics_text(c.url("admin", ""))
    assert metric_sum(text, "meshtrace_tail_sampling_traces_buffered") == num_traces
    # Exactly the traces that did not fit were decided early, and counted.
    assert metric_sum(text, "meshtrace_tail_sampling_decisions_total", trigger="overflow") == 20 * num_traces - num_traces
    # 20,000 more ~1 KB traces went through; unbounded, that is ~20 MB more. Bounded, the
    # buffer holds the same 2,000 traces after both floods.
    grew_mb = (after_second - after_first) / 1024
    assert grew_mb < 8, f"RSS grew {grew_mb:.1f} MB over the second flood ({after_first} -> {after_second} kB)"


def test_policy_file_reloads_live_and_a_broken_one_keeps_the_last(start_collector, tmp_path):
    policy = tmp_path / "policy.yaml"
    write_policy(policy, ERRORS_ONLY.format(wait="1s", num_traces=100))
    c = start_collector(extra_args=["--sampling-policy", str(policy)])
    provider, tracer = tracer_for("shop", OTLPSpanExporter(endpoint=c.url("otlp", "/v1/traces")))
    admin = c.url("admin", "")

    def one():
        span = tracer.start_span("GET /ok", kind=SpanKind.SERVER)
        span.end()
        return hexid(span.get_span_context().trace_id)

    assert trace_json(c, one()) is None  # not an error: dropped
    write_policy(policy, "policies:\n  - {name: everything, type: always_sample}\n")
    wait_until(lambda: metric_sum(metrics_text(admin), "meshtrace_tail_sampling_reloads_total", result="ok") == 1,
               message="the new policy to be loaded")
    assert trace_json(c, one()) is not None
    write_policy(policy, "policies:\n  - {name: broken, type: latency, latency: {threshold_ms: soon}}\n")
    wait_until(lambda: metric_sum(metrics_text(admin), "meshtrace_tail_sampling_reloads_total", result="error") == 1,
               message="the broken policy to be refused")
    assert "latency.threshold_ms" in c.log() and "the previous one stays" in c.log()
    assert trace_json(c, one()) is not None  # still always_sample
    provider.shutdown()


def test_a_broken_policy_file_stops_the_start_naming_the_line(tmp_path):
    policy = tmp_path / "policy.yaml"
    write_policy(policy, "policies:\n  - name: slow\n    type: latency\n    latency: {threshold_ms: 500, upper_threshold_ms: 100}\n")
    out = subprocess.run([BINARY, "collector", "--sampling-policy", str(policy), "--zipkin-port", "0", "--otlp-http-port", "0",
                          "--otlp-grpc-port", "-1", "--query-port", "0", "--admin-port", "0", "--storage", "memory"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f"{policy}:4" in out.stderr and "policies[0].latency.upper_threshold_ms" in out.stderr, out.stderr


def test_two_collectors_route_every_trace_to_one_decider(start_collector, tmp_path):
    a_policy, b_policy = tmp_path / "a.yaml", tmp_path / "b.yaml"
    keep_all = "policies:\n  - {name: everything, type: always_sample}\n"
    write_policy(a_policy, "decision_wait: 2s\n" + keep_all)
    write_policy(b_policy, "decision_wait: 2s\n" + keep_all)
    a = start_collector(data_dir=tmp_path / "a", extra_args=["--sampling-policy", str(a_policy)])
    b = start_collector(data_dir=tmp_path / "b", extra_args=["--sampling-policy", str(b_policy)])
    peers = [f"http://127.0.0.1:{a.ports['otlp']}", f"http://127.0.0.1:{b.ports['otlp']}"]
    for me, path in [(peers[0], a_policy), (peers[1], b_policy)]:
        write_policy(path, f"decision_wait: 2s\nrouting:\n  self: {me}\n  peers: [{peers[0]}, {peers[1]}]\n" + keep_all)
    for c in (a, b):
        wait_until(lambda c=c: metric_sum(metrics_text(c.url("admin", "")), "meshtrace_tail_sampling_reloads_total", result="ok") == 1,
                   message="the routing to be loaded")

    # One service exports OTLP/HTTP to A, the other Zipkin JSON to B, in the same traces.
    p1, front = tracer_for("front", OTLPSpanExporter(endpoint=a.url("otlp", "/v1/traces")))
    p2, back = tracer_for("back", ZipkinExporter(endpoint=b.url("zipkin", "/api/v2/spans")))
    trace_ids = []
    for i in range(200):
        root = front.start_span("GET /page", kind=SpanKind.SERVER)
        call = front.start_span("GET /api", kind=SpanKind.CLIENT, context=set_span_in_context(root))
        served = back.start_span("GET /api", kind=SpanKind.SERVER, context=set_span_in_context(call))
        served.end()
        call.end()
        root.end()
        trace_ids.append(hexid(root.get_span_context().trace_id))
    p1.shutdown()
    p2.shutdown()

    owners = {}
    for t in trace_ids:
        def found(t=t):
            got = {name: trace_json(c, t) for name, c in (("a", a), ("b", b))}
            return got if any(got.values()) else None
        got = wait_until(found, message=f"trace {t} stored")
        holders = [name for name, trace in got.items() if trace]
        assert len(holders) == 1, f"trace {t} is split over {holders}"
        assert len(got[holders[0]]["spans"]) == 3, got[holders[0]]
        owners[t] = holders[0]
    share_a = sum(1 for o in owners.values() if o == "a")
    assert 60 <= share_a <= 140, f"A owns {share_a} of 200 (50% expected, 4 sd = 28)"
    forwarded = sum(metric_sum(metrics_text(c.url("admin", "")), "meshtrace_collector_forwarded_spans_total") for c in (a, b))
    assert forwarded > 0
    assert sum(metric_sum(metrics_text(c.url("admin", "")), "meshtrace_collector_forward_fallback_spans_total") for c in (a, b)) == 0
