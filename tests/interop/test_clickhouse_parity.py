"""The same spans into a SQLite collector and a ClickHouse collector: every query answer is the same
JSON, through the HTTP APIs people use (Jaeger, Zipkin, the service graph, analysis, critical
path). The store conformance suite checks `TraceStore` calls one by one; this checks what a user
sees, including values with quotes, tabs, newlines and NUL, error spans, annotations, and a
three-service call chain for dependencies and the graph."""
import json
import time
from urllib.parse import quote

import requests

from clickhouse import clickhouse  # noqa: F401  (fixture)
from spans import new_rng, rand_hex

HOSTILE = ["it's", 'say "hi"', "tab\there", "line\nbreak", "nul\u0000byte", "back\\slash", "ünïcødé ✓", "'); DROP TABLE spans; --"]


def chain(rng, start_us, i):
    """frontend SERVER -> frontend CLIENT -> checkout SERVER -> checkout CLIENT (to db)."""
    trace = rand_hex(rng, 32)
    ids = [rand_hex(rng, 16) for _ in range(4)]
    failed = i % 4 == 0
    hostile = HOSTILE[i % len(HOSTILE)]

    def span(k, parent, kind, service, name, offset, duration, **extra):
        s = {"traceId": trace, "id": ids[k], "kind": kind, "name": name, "timestamp": start_us + offset,
             "duration": duration, "localEndpoint": {"serviceName": service, "ipv4": "10.0.0.%d" % (k + 1)},
             "tags": {"http.method": "GET", "note": hostile, "i": str(i)}}
        if parent is not None:
            s["parentId"] = ids[parent]
        s.update(extra)
        return s

    spans = [
        span(0, None, "SERVER", "frontend", "get /cart", 0, 9_000 + 100 * i,
             annotations=[{"timestamp": start_us + 10, "value": "cache miss " + hostile}]),
        span(1, 0, "CLIENT", "frontend", "get /checkout", 500, 7_000, remoteEndpoint={"serviceName": "checkout"}),
        span(2, 1, "SERVER", "checkout", "get /checkout", 700, 6_000 + 50 * i),
        span(3, 2, "CLIENT", "checkout", "select", 900, 4_000, remoteEndpoint={"serviceName": "db"}),
    ]
    if failed:
        spans[2]["tags"]["error"] = "payment declined"
        spans[3]["tags"]["error"] = "true"
    return trace, spans


def answers(c, traces, end_ms):
    """Every GET a user makes, as (path, status, body parsed as JSON)."""
    lookback_ms = 3_600_000
    paths = [
        "/api/services",
        "/api/services/frontend/operations",
        "/api/operations?service=checkout&spanKind=server",
        "/api/operations?service=frontend",
        f"/api/traces?service=frontend&lookback=1h&limit=100&end={end_ms * 1000}",
        f"/api/traces?service=checkout&operation=get%20%2Fcheckout&lookback=1h&limit=5&end={end_ms * 1000}",
        f"/api/traces?service=checkout&tags={quote(json.dumps({'error': 'payment declined'}))}&lookback=1h&end={end_ms * 1000}",
        f"/api/traces?service=frontend&tags={quote(json.dumps({'note': HOSTILE[3]}))}&lookback=1h&end={end_ms * 1000}",
        f"/api/traces?service=frontend&minDuration=10ms&lookback=1h&end={end_ms * 1000}",
        f"/api/traces?traceID={traces[0]}&traceID={traces[5]}",
        f"/api/traces/{traces[1]}",
        f"/api/traces/{traces[4]}",
        f"/api/dependencies?endTs={end_ms}&lookback={lookback_ms}",
        "/api/v2/services",
        "/api/v2/spans?serviceName=checkout",
        "/api/v2/remoteServices?serviceName=checkout",
        f"/api/v2/traces?serviceName=frontend&limit=100&endTs={end_ms}&lookback={lookback_ms}",
        f"/api/v2/traces?annotationQuery={quote('error=payment declined')}&endTs={end_ms}&lookback={lookback_ms}",
        f"/api/v2/traces?annotationQuery={quote('note=' + HOSTILE[4])}&endTs={end_ms}&lookback={lookback_ms}",
        f"/api/v2/traces?serviceName=checkout&remoteServiceName=db&spanName=select&endTs={end_ms}&lookback={lookback_ms}",
        f"/api/v2/traces?minDuration=10000&endTs={end_ms}&lookback={lookback_ms}",
        f"/api/v2/trace/{traces[2]}",
        f"/api/v2/traceMany?traceIds={traces[3]},{traces[6]}",
        f"/api/v2/dependencies?endTs={end_ms}&lookback={lookback_ms}",
        f"/api/meshtrace/graph?lookback=1h&endTs={end_ms}",
        f"/api/meshtrace/analysis?lookback=1h&endTs={end_ms}",
        f"/api/meshtrace/critical-path/{traces[0]}",
    ]
    out = []
    for path in paths:
        port = "zipkin" if path.startswith("/api/v2/") else "query"
        r = requests.get(c.url(port, path), timeout=30)
        out.append((path, r.status_code, r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text))
    return out


def test_sqlite_and_clickhouse_answer_every_query_the_same(clickhouse, start_collector, tmp_path):  # noqa: F811
    sqlite = start_collector(tmp_path / "sqlite")
    ch = start_collector(tmp_path / "ch", ["--storage", "clickhouse", "--clickhouse-url", clickhouse.urls[0],
                                           "--clickhouse-database", "mt_parity"])
    rng = new_rng(2020)
    # Two minutes ago, so analysis treats every trace as settled; 1 ms apart, newest last.
    start_us = int(time.time() * 1e6) - 120_000_000
    traces, body = [], []
    for i in range(24):
        trace, spans = chain(rng, start_us + i * 1000, i)
        traces.append(trace)
        body.extend(spans)
    for c in (sqlite, ch):
        r = requests.post(c.url("zipkin", "/api/v2/spans"), json=body, timeout=60)
        assert r.status_code == 202, (r.status_code, r.text)  # acknowledged = stored, in both stores
    end_ms = int(time.time() * 1000)

    expected, got = answers(sqlite, traces, end_ms), answers(ch, traces, end_ms)
    for (path, want_status, want), (_, status, have) in zip(expected, got):
        assert want_status == 200, f"SQLite: {path} -> {want_status}: {want}"
        assert status == 200, f"ClickHouse: {path} -> {status}: {have}"
        assert have == want, f"{path} differs:\nSQLite:     {json.dumps(want)[:1500]}\nClickHouse: {json.dumps(have)[:1500]}"
    # Not vacuous: the searches found what the fixture holds.
    by_path = {p: body for p, _, body in expected}
    assert len(by_path[f"/api/traces?service=frontend&lookback=1h&limit=100&end={end_ms * 1000}"]["data"]) == 24
    assert len(by_path[f"/api/traces?service=checkout&tags={quote(json.dumps({'error': 'payment declined'}))}&lookback=1h&end={end_ms * 1000}"]["data"]) == 6
    assert {(d["parent"], d["child"]) for d in by_path[f"/api/dependencies?endTs={end_ms}&lookback=3600000"]["data"]} == {
        ("frontend", "checkout"), ("checkout", "db")}
