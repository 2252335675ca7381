"""Tail-based sampling through the demo mesh, with the OpenTelemetry Python SDK as the client:
2,000 traces (2% failing, 2% slow) under "errors + slow + 5% of the rest". Every error and slow
trace is stored whole; the rest is kept exactly where OpenTelemetry's probabilistic policy
(FNV-1a of the trace id, reimplemented here independently) says, about 5% of it within a stated
binomial tolerance; the graph's request rate and error % match the true totals, although 95% of
the traces are gone."""
import concurrent.futures
import time

import requests
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from conftest import wait_until
from tailsampling import binomial_bounds, metric_sum, metrics_text, probabilistic_keeps
from test_mesh import EPHEMERAL, Mesh

TRACES = 2000
KEEP_PERCENT = 5
SLOW_MS = 1500          # the policy's threshold
SLOW_DELAY_MS = 1700    # what the demo database sleeps for a slow request
DECISION_WAIT = "3s"    # short, so the test does not wait 10 s for traces still in flight
EXPECTED_SERVICES = {("loadgen", "client"), ("gateway", "server"), ("gateway", "client"), ("frontend", "server"),
                     ("frontend", "client"), ("backend", "server"), ("backend", "client"), ("database", "server")}


def kind(span):
    return next((t["value"] for t in span["tags"] if t["key"] == "span.kind"), "internal")


def test_errors_slow_and_five_percent_of_the_rest_through_the_demo_mesh(tmp_path):
    mesh = Mesh(["demo", "--tail", "--requests", "0", "--keep-percent", str(KEEP_PERCENT), "--slower-than", f"{SLOW_MS}ms",
                 "--decision-wait", DECISION_WAIT, "--otlp-grpc-port", "0", *EPHEMERAL], tmp_path)
    try:
        otlp = mesh.wait_for(r"OTLP:\s+(http://\S+)").group(1)
        mesh.wait_for(r"tail sampling: the collector keeps errors, traces slower than 1500 ms and 5% of the rest")
        targets = requests.get(mesh.control + "/prometheus/targets", timeout=10).json()
        admin = "http://" + next(g["targets"][0] for g in targets if g["labels"]["service"] == "meshtrace-collector")

        provider = TracerProvider(resource=Resource.create({"service.name": "loadgen"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp, insecure=True), schedule_delay_millis=100))
        tracer = provider.get_tracer("tail-sampling-interop")

        # 2% fail (the database answers 500), 2% are slow, spread through the run.
        errors = set(range(25, TRACES, 50))
        slow = set(range(12, TRACES, 50))
        assert len(errors) == len(slow) == TRACES // 50

        def one(i):
            report = f"err-{i}" if i in errors else f"slow-{SLOW_DELAY_MS}-{i}" if i in slow else str(i % 50 + 1)
            span = tracer.start_span("GET /api/reports/{id}", kind=SpanKind.CLIENT, attributes={"http.method": "GET"})
            headers = {}
            propagate.inject(headers, context=set_span_in_context(span))
            status = requests.get(f"{mesh.gateway}/api/reports/{report}", headers=headers, timeout=60).status_code
            span.set_attribute("http.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            return format(span.get_span_context().trace_id, "032x"), i, status, (span.end_time - span.start_time) / 1e6

        # The pre-sampling counts start at the first whole 5 s bucket after tail sampling was
        # turned on; wait for it, so the whole run is counted before sampling (not "mixed").
        def counting_since():
            g = requests.get(f"{mesh.ui}/api/meshtrace/graph", params={"lookback": "1m"}, timeout=10).json()
            return g.get("preSamplingFromMs") is not None and g["preSamplingFromMs"] <= time.time() * 1000 and g
        wait_until(counting_since, timeout=15, interval=0.2, message="pre-sampling counts begin")
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            sent = list(pool.map(one, range(TRACES)))
        provider.force_flush()
        provider.shutdown()

        failed = {t for t, i, status, _ in sent if status >= 500}
        intended_slow = {t for t, i, _, _ in sent if i in slow}
        assert failed == {t for t, i, _, _ in sent if i in errors}, "only the err- requests may fail"

        # Every trace decided (none waiting), then look at what was kept.
        def all_decided():
            text = metrics_text(admin)
            decided = metric_sum(text, "meshtrace_tail_sampling_decisions_total")
            return decided >= TRACES and metric_sum(text, "meshtrace_tail_sampling_traces_buffered") == 0 and text
        text = wait_until(all_decided, timeout=60, interval=0.5, message="every trace decided")
        assert metric_sum(text, "meshtrace_tail_sampling_decisions_total", trigger="overflow") == 0

        stored = {}
        for trace_id, _, _, _ in sent:
            r = requests.get(f"{mesh.ui}/api/traces/{trace_id}", timeout=10)
            if r.status_code == 200:
                stored[trace_id] = r.json()["data"][0]
            else:
                assert r.status_code == 404, r.text

        # Errors and slow traces: every one, whole (every parent there, every hop present).
        for trace_id in failed | intended_slow:
            assert trace_id in stored, f"{trace_id} ({'error' if trace_id in failed else 'slow'}) was not kept"
            spans = stored[trace_id]["spans"]
            procs = stored[trace_id]["processes"]
            have = {(procs[s["processID"]]["serviceName"], kind(s)) for s in spans}
            assert EXPECTED_SERVICES <= have, f"{trace_id} is missing {EXPECTED_SERVICES - have}"
            ids = {s["spanID"] for s in spans}
            assert all(ref["spanID"] in ids for s in spans for ref in s["references"]), f"{trace_id} has a span whose parent is missing"
            if trace_id not in failed:
                assert any(s["operationName"] == "compute-report" for s in spans), f"{trace_id} lacks backend's business span"

        # The rest: kept exactly where the hash says, plus any that really were slow.
        rest = [t for t, _, _, _ in sent if t not in failed and t not in intended_slow]
        hashed = {t for t in rest if probabilistic_keeps(t, KEEP_PERCENT)}
        kept_rest = {t for t in rest if t in stored}
        assert hashed <= kept_rest, f"{len(hashed - kept_rest)} traces the hash keeps were dropped"
        for t in kept_rest - hashed:
            spans = stored[t]["spans"]
            duration_ms = (max(s["startTime"] + s["duration"] for s in spans) - min(s["startTime"] for s in spans)) / 1000
            assert duration_ms >= SLOW_MS, f"{t} was kept but is neither error, slow ({duration_ms} ms) nor chosen by the hash"
        low, high = binomial_bounds(len(rest), KEEP_PERCENT / 100)
        assert low <= len(hashed) <= high, f"{len(hashed)} of {len(rest)} is outside 5% +- 4 sd [{low:.0f}, {high:.0f}]"
        for t in hashed:
            counts = {tag["value"] for s in stored[t]["spans"] for tag in s["tags"] if tag["key"] == "sampling.adjusted_count"}
            assert counts == {100 / KEEP_PERCENT}, counts

        # The graph counts every trace, kept or not: rate and error % within 2% of the truth.
        lookback = int(time.time() - started) + 5
        graph = requests.get(f"{mesh.ui}/api/meshtrace/graph", params={"lookback": f"{lookback}s"}, timeout=10).json()
        # Counted before sampling for the whole of the test's traffic.
        assert graph["source"] in ("pre-sampling", "mixed"), graph
        assert graph["preSamplingFromMs"] <= started * 1000, graph
        true_error_rate = len(failed) / TRACES
        for source, target in [("loadgen", "gateway"), ("gateway", "frontend")]:
            edge = next(e for e in graph["edges"] if e["source"] == source and e["target"] == target)
            assert abs(edge["requests"] - TRACES) <= 0.02 * TRACES, edge
            assert abs(edge["rps"] - TRACES / lookback) <= 0.02 * TRACES / lookback, edge
            assert abs(edge["errorRate"] - true_error_rate) <= 0.02 * true_error_rate, edge

        # /metrics like the spanmetrics connector: every gateway SERVER span counted.
        calls = metric_sum(text, "traces_span_metrics_calls_total", service_name="gateway", span_kind="SPAN_KIND_SERVER")
        assert calls == TRACES, calls
        assert mesh.stop() == 0, mesh.log()[-3000:]
    finally:
        mesh.kill()
