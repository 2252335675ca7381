"""Two ClickHouse shards (one cluster, ON CLUSTER DDL through ZooKeeper) and two stateless
collectors: the OpenTelemetry SDK sends to collector A, collector B returns every trace whole,
each trace's rows sit on one shard, and kill -9 of a collector loses nothing it acknowledged."""
import signal
import threading

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context

from clickhouse import clickhouse_cluster  # noqa: F401  (fixture)
from conftest import get_json, wait_until
from spans import new_rng, zipkin_span

DB = "mt_cluster"


def cluster_args(url, db=DB):
    return ["--storage", "clickhouse", "--clickhouse-url", url, "--clickhouse-database", db,
            "--clickhouse-cluster", "meshtrace_test"]


def ready(c):
    return requests.get(c.url("admin", "/readyz"), timeout=5).status_code == 200


def test_sdk_to_a_whole_traces_from_b_one_shard_each(clickhouse_cluster, start_collector, tmp_path):
    a = start_collector(tmp_path / "a", cluster_args(clickhouse_cluster.urls[0]))
    b = start_collector(tmp_path / "b", cluster_args(clickhouse_cluster.urls[1]))
    wait_until(lambda: ready(a) and ready(b), timeout=60, message="both collectors ready")

    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=a.url("otlp", "/v1/traces"), timeout=30)))
    tracer = provider.get_tracer("cluster-test")
    traces = {}
    for i in range(40):
        root = tracer.start_span(f"GET /item/{i}", kind=SpanKind.SERVER, attributes={"http.status_code": 200, "i": i})
        ctx = set_span_in_context(root)
        children = [tracer.start_span(f"call {n}", kind=SpanKind.CLIENT, context=ctx, attributes={"peer.service": n})
                    for n in ("cart", "stock", "price")]
        for c in children:
            c.end()
        root.end()
        traces[format(root.get_span_context().trace_id, "032x")] = {format(s.get_span_context().span_id, "016x")
                                                                    for s in [root, *children]}
    provider.shutdown()

    for trace_id, span_ids in traces.items():
        body = get_json(b.url("query", f"/api/traces/{trace_id}"))
        [trace] = body["data"]
        assert {s["spanID"] for s in trace["spans"]} == span_ids, f"trace {trace_id} not whole from collector B"
    assert "shop" in get_json(b.url("query", "/api/services"))["data"]
    found = get_json(b.url("query", "/api/traces"), service="shop", limit=100, lookback="1h")["data"]
    assert {t["traceID"] for t in found} == set(traces)

    # Each trace's spans on exactly one shard, and both shards used.
    per_shard = []
    for shard in (1, 2):
        rows = clickhouse_cluster.query(
            f"SELECT lower(hex(trace_hi)), lower(hex(trace_lo)), count() FROM {DB}.spans_data_local GROUP BY trace_hi, trace_lo FORMAT TSV",
            shard)
        ids = {}
        for line in rows.splitlines():
            hi, lo, n = line.split("\t")
            ids[hi.rjust(16, "0") + lo.rjust(16, "0")] = int(n)
        per_shard.append(ids)
    assert per_shard[0] and per_shard[1], "one shard got nothing: not sharded"
    assert not set(per_shard[0]) & set(per_shard[1]), "a trace is split across shards"
    for trace_id, span_ids in traces.items():
        counts = [s.get(trace_id, 0) for s in per_shard]
        assert sorted(counts) == [0, len(span_ids)], (trace_id, counts)


def test_kill_9_of_a_collector_loses_nothing_acknowledged(clickhouse_cluster, start_collector, tmp_path):
    a = start_collector(tmp_path / "a", cluster_args(clickhouse_cluster.urls[0], "mt_cluster_kill"))
    b = start_collector(tmp_path / "b", cluster_args(clickhouse_cluster.urls[1], "mt_cluster_kill"))
    wait_until(lambda: ready(a) and ready(b), timeout=60, message="both collectors ready")
    rng = new_rng(20)
    acked, errors = [], []
    stop = threading.Event()

    def send():
        session = requests.Session()
        while not stop.is_set():
            batch = [zipkin_span(rng, service="durable-ch") for _ in range(50)]
            try:
                r = session.post(a.url("zipkin", "/api/v2/spans"), json=batch, timeout=30)
            except requests.RequestException:
                return  # A died mid-request: that batch was never acknowledged
            if r.status_code == 202:
                acked.extend(s["traceId"] for s in batch)
            elif r.status_code != 503:
                errors.append((r.status_code, r.text))

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(acked) >= 1000, timeout=120, message="1000 acknowledged spans")
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    stop.set()
    sender.join(timeout=60)
    assert not errors, errors
    for trace_id in acked:
        r = requests.get(b.url("zipkin", f"/api/v2/trace/{trace_id}"), timeout=10)
        assert r.status_code == 200, f"acknowledged trace {trace_id} lost after kill -9 of collector A ({len(acked)} acked)"
