"""`meshtrace sidecar` as real processes: an echo app behind an inbound sidecar, reached through
an outbound sidecar used as HTTP_PROXY, spans exported to a real `meshtrace collector`.
Clients are curl and Python requests; nothing here shares code with the proxy."""
import json
import os
import re
import socket
import subprocess
import threading
import uuid

import pytest
import requests

from conftest import BINARY, get_json, wait_until, zipkin_trace
from sidecar.procs import EchoApp, Sidecar

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[0-3]$")  # Level 2: bit 1 is random-trace-id
HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def mesh(procs, start_collector):
    """app <- backend inbound sidecar <- frontend outbound sidecar; both export to a collector."""
    collector = start_collector(extra_args=["--storage", "memory"])
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}"
    app = procs(EchoApp())
    backend = procs(Sidecar(BINARY, "--service", "backend", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--collector", zipkin))
    frontend = procs(Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1",
                             "--upstream", f"backend=127.0.0.1:{backend.ports['inbound']}", "--collector", zipkin,
                             "--custom-tag", "env=literal:test", "--custom-tag", "tenant=header:x-tenant"))
    return {"collector": collector, "app": app, "backend": backend, "frontend": frontend}


def echoed(body):
    """Headers the app received, lower-cased name -> list of values."""
    out = {}
    for name, value in json.loads(body)["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def proxied_session(proxy_url, monkeypatch):
    """A requests session that takes its proxy from HTTP_PROXY, as an app in a mesh would."""
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("http_proxy", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    s = requests.Session()
    s.trust_env = True
    return s


def assert_well_formed(h):
    tp = h["traceparent"][0]
    m = TRACEPARENT.match(tp)
    assert m, tp
    trace_id, span_id = m.group(1), m.group(2)
    assert h["x-b3-traceid"] == [trace_id], h
    assert h["x-b3-spanid"] == [span_id], h
    assert HEX16.match(h["x-b3-parentspanid"][0]), h
    assert h["x-b3-sampled"][0] in ("0", "1"), h
    return trace_id, span_id


def test_curl_through_outbound_and_inbound_propagates_w3c_and_b3(mesh):
    frontend, collector = mesh["frontend"], mesh["collector"]
    parent_trace = uuid.uuid4().hex
    parent_span = uuid.uuid4().hex[:16]
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-x", frontend.url("outbound"), "http://backend/api/items?id=7",
         "-H", f"traceparent: 00-{parent_trace}-{parent_span}-01", "-H", "tracestate: acme=1",
         "-H", "x-request-id: curl-req-1", "-H", "sw8: 1-xyz", "-H", "baggage: user=alice",
         "-H", "x-datadog-trace-id: 99", "-H", "x-ot-span-context: otc", "-H", "x-tenant: acme",
         "-w", "\n%{http_code}"],
        capture_output=True, text=True, timeout=20)
    body, _, code = out.stdout.rpartition("\n")
    assert code == "200", out
    h = echoed(body)
    trace_id, app_parent = assert_well_formed(h)
    assert trace_id == parent_trace
    assert h["tracestate"] == ["acme=1"]
    assert h["x-request-id"] == ["curl-req-1"]
    for name, value in [("sw8", "1-xyz"), ("baggage", "user=alice"), ("x-datadog-trace-id", "99"), ("x-ot-span-context", "otc")]:
        assert h[name] == [value], name
    assert "x-envoy-downstream-service-cluster" not in h
    assert "proxy-connection" not in h
    assert json.loads(body)["path"] == "/api/items?id=7"

    spans = zipkin_trace(collector, trace_id, 2)
    client = [s for s in spans if s.get("kind") == "CLIENT"]
    server = [s for s in spans if s.get("kind") == "SERVER"]
    assert len(client) == 1 and len(server) == 1, spans
    client, server = client[0], server[0]
    assert client["localEndpoint"]["serviceName"] == "frontend"
    assert server["localEndpoint"]["serviceName"] == "backend"
    assert client["parentId"] == parent_span
    assert server["parentId"] == client["id"], "the CLIENT span is the parent of the SERVER span"
    assert server["id"] == app_parent, "the app's parent is the SERVER span"
    assert client["tags"]["upstream_cluster"] == "outbound|80||backend"
    assert server["tags"]["upstream_cluster"] == f"inbound|{mesh['app'].port}||"
    assert client["tags"]["guid:x-request-id"] == server["tags"]["guid:x-request-id"] == "curl-req-1"
    assert client["tags"]["response_flags"] == "-" and client["tags"]["http.status_code"] == "200"
    assert server["tags"]["downstream_cluster"] == "frontend"
    assert client["tags"]["env"] == "test" and client["tags"]["tenant"] == "acme"


def test_upstream_503_is_retried_and_both_attempts_are_children_of_the_client_span(mesh, monkeypatch):
    """Istio's default policy retries a 503; the trace shows one CLIENT span with retry.count and
    one SERVER span per attempt, both its children."""
    frontend, collector = mesh["frontend"], mesh["collector"]
    trace_id = uuid.uuid4().hex
    session = proxied_session(frontend.url("outbound"), monkeypatch)
    r = session.get(f"http://backend/flaky/{uuid.uuid4().hex}?fail=1", timeout=10,
                    headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})
    assert r.status_code == 200, r.text
    assert "x-meshtrace-response-flags" not in r.headers
    spans = zipkin_trace(collector, trace_id, 3)
    client = [s for s in spans if s.get("kind") == "CLIENT"]
    server = sorted((s for s in spans if s.get("kind") == "SERVER"), key=lambda s: s["timestamp"])
    assert len(client) == 1 and len(server) == 2, spans
    client = client[0]
    assert client["tags"]["retry.count"] == "1" and client["tags"]["http.status_code"] == "200"
    assert client["tags"]["response_flags"] == "-" and "error" not in client["tags"]
    assert [s["tags"]["http.status_code"] for s in server] == ["503", "200"]
    assert all(s["parentId"] == client["id"] for s in server)
    assert server[0]["tags"]["error"] == "true"

    # With the retries used up, the app's own 503 comes back, and the span says URX.
    trace_id = uuid.uuid4().hex
    r = session.get("http://backend/status/503", timeout=10,
                    headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})
    assert r.status_code == 503
    assert json.loads(r.text)["path"] == "/status/503", "the app's answer, not a local reply"
    spans = zipkin_trace(collector, trace_id, 4)
    client = [s for s in spans if s.get("kind") == "CLIENT"]
    assert len(client) == 1 and len(spans) == 4, spans
    assert client[0]["tags"]["response_flags"] == "URX" and client[0]["tags"]["retry.count"] == "2"
    assert client[0]["tags"]["error"] == "true"


def test_python_requests_via_http_proxy_keeps_request_id_and_generates_one(mesh, monkeypatch):
    s = proxied_session(mesh["frontend"].url("outbound"), monkeypatch)
    r = s.get("http://backend/orders", headers={"x-request-id": "py-req-1"}, timeout=10)
    assert r.status_code == 200, r.text
    h = echoed(r.text)
    assert_well_formed(h)
    assert h["x-request-id"] == ["py-req-1"]
    ids = set()
    for _ in range(5):
        r = s.get("http://backend/orders", timeout=10)  # keep-alive through the proxy
        h = echoed(r.text)
        rid = h["x-request-id"][0]
        assert uuid.UUID(rid).version == 4, rid
        ids.add(rid)
        assert_well_formed(h)
    assert len(ids) == 5
    # POST bodies stream through both sidecars, chunked and with a length.
    big = os.urandom(2_000_000)
    r = s.post("http://backend/upload", data=big, timeout=30)
    assert r.status_code == 200 and json.loads(r.text)["body_bytes"] == len(big)
    r = s.post("http://backend/upload", data=iter([b"a" * 1000, b"b" * 5000]), timeout=30)
    assert r.status_code == 200 and json.loads(r.text)["body_bytes"] == 6000
    r = s.get("http://backend/stream?chunks=50&size=65536", timeout=30)
    assert r.status_code == 200 and len(r.content) == 50 * 65536


def test_invalid_trace_headers_restart_the_trace(mesh, monkeypatch):
    s = proxied_session(mesh["frontend"].url("outbound"), monkeypatch)
    for bad in ({"traceparent": "00-zz-yy-01", "tracestate": "a=b"},
                {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
                {"b3": "garbage"}, {"x-b3-traceid": "123", "x-b3-spanid": "x"}):
        r = s.get("http://backend/x", headers=bad, timeout=10)
        assert r.status_code == 200, (bad, r.text)
        h = echoed(r.text)
        assert_well_formed(h)
        assert "tracestate" not in h


def test_b3_input_is_continued(mesh, monkeypatch):
    s = proxied_session(mesh["frontend"].url("outbound"), monkeypatch)
    trace_id = uuid.uuid4().hex
    r = s.get("http://backend/b3", headers={"X-B3-TraceId": trace_id, "X-B3-SpanId": "a2fb4a1d1a96d312", "X-B3-Sampled": "1"},
              timeout=10)
    h = echoed(r.text)
    got, _ = assert_well_formed(h)
    assert got == trace_id
    spans = zipkin_trace(mesh["collector"], trace_id, 2)
    assert {s["parentId"] for s in spans if s["kind"] == "CLIENT"} == {"a2fb4a1d1a96d312"}


def test_gateway_starts_traces_and_generates_request_ids(procs, start_collector):
    collector = start_collector(extra_args=["--storage", "memory"])
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}"
    app = procs(EchoApp())
    backend = procs(Sidecar(BINARY, "--service", "backend", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--collector", zipkin))
    gateway = procs(Sidecar(BINARY, "--service", "ingress", "--inbound-port", "-1", "--outbound-port", "-1",
                            "--gateway-port", "0", "--route", "/shop=backend",
                            "--upstream", f"backend=127.0.0.1:{backend.ports['inbound']}", "--collector", zipkin))
    r = requests.get(gateway.url("gateway", "/shop/cart"), timeout=10)
    assert r.status_code == 200
    h = echoed(r.text)
    trace_id, _ = assert_well_formed(h)
    assert uuid.UUID(h["x-request-id"][0]).version == 4
    spans = zipkin_trace(collector, trace_id, 2)
    root = [s for s in spans if "parentId" not in s]
    assert len(root) == 1 and root[0]["localEndpoint"]["serviceName"] == "ingress", spans
    assert requests.get(gateway.url("gateway", "/nothing"), timeout=10).status_code == 404


def test_admin_config_dump_ready_and_yaml_config(procs, tmp_path):
    app = procs(EchoApp())
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(f"""
service: reviews
app-port: {app.port}
sampling: 25
propagation: [w3c, b3single]
upstream:
  ratings: 127.0.0.1:9
outbound-policy: registry-only
custom-tag:
  - env=literal:prod
request-timeout: 2s
""")
    sidecar = procs(Sidecar(BINARY, "--config", str(cfg), "--sampling", "50"))
    dump = get_json(sidecar.url("admin", "/config_dump"))
    assert dump["service"] == "reviews"
    assert dump["sampling"]["percent"] == 50, "flags win over the file"
    assert dump["propagation"] == ["w3c", "b3single"]
    assert dump["upstreams"] == [{"name": "ratings", "address": "127.0.0.1:9"}]
    assert dump["policies"]["outbound_policy"] == "registry-only"
    assert dump["policies"]["request_timeout_ms"] == 2000
    names = {l["name"]: l for l in dump["listeners"]}
    assert names["inbound"]["address"].endswith(f":{sidecar.ports['inbound']}")
    assert "exporter" in dump
    assert requests.get(sidecar.url("admin", "/ready"), timeout=5).text == "LIVE\n"
    assert "downstream_rq_total" in requests.get(sidecar.url("admin", "/stats"), timeout=5).text
    # b3single only toward the app
    h = echoed(requests.get(sidecar.url("inbound", "/r"), timeout=5).text)
    assert "b3" in h and "x-b3-traceid" not in h and "traceparent" in h


def test_bad_flags_fail_fast_with_a_message():
    out = subprocess.run([BINARY, "sidecar", "--sampling", "250"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "sampling" in (out.stderr + out.stdout)


def test_sigterm_drains_in_flight_requests_and_flushes_spans(procs, start_collector):
    collector = start_collector(extra_args=["--storage", "memory"])
    app = procs(EchoApp())
    sidecar = procs(Sidecar(BINARY, "--service", "backend", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}"))
    trace_id = uuid.uuid4().hex
    result = {}

    def slow():
        result["r"] = requests.get(sidecar.url("inbound", "/slow?ms=800"), timeout=10,
                                   headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"})

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: "downstream_rq_active: 1" in requests.get(sidecar.url("admin", "/stats"), timeout=5).text,
               message="request in flight")
    assert sidecar.stop() == 0, sidecar.log()
    t.join(10)
    assert result["r"].status_code == 200
    assert zipkin_trace(collector, trace_id, 1)[0]["kind"] == "SERVER"


def test_curl_large_upload_with_expect_100_continue(mesh, tmp_path):
    payload = tmp_path / "upload.bin"
    payload.write_bytes(os.urandom(3_000_000))
    # curl waits --expect100-timeout (60 s here) for "100 Continue" before sending the body
    # anyway; --max-time 30 fails the run first if no 100 comes. Order, not speed: the 100 is in
    # curl's trace before the body went out.
    trace = tmp_path / "curl-trace.txt"
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "--expect100-timeout", "60", "--trace-ascii", str(trace),
         "-x", mesh["frontend"].url("outbound"), "-H", "Expect: 100-continue",
         "--data-binary", f"@{payload}", "http://backend/upload"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["body_bytes"] == 3_000_000
    lines = trace.read_text(errors="replace").splitlines()
    continued = next((i for i, line in enumerate(lines) if line.startswith("<= Recv header") and "100 Continue" in lines[i + 1]), None)
    sent = next((i for i, line in enumerate(lines) if line.startswith("=> Send data")), None)
    assert continued is not None and sent is not None and continued < sent, "the proxy answered 100 Continue before the body"


def test_the_sidecar_only_binary_is_the_same_sidecar(procs, start_collector):
    """`meshtrace-sidecar` (built beside `meshtrace`, for deploying next to an app) takes the same
    flags and does the same work: a traced hop, exported, with the app seeing the trace headers."""
    binary = os.path.join(os.path.dirname(BINARY), "meshtrace-sidecar")
    usage = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "USAGE: meshtrace-sidecar" in usage.stdout and "--app-port" in usage.stdout, usage
    collector = start_collector(extra_args=["--storage", "memory"])
    app = procs(EchoApp())
    sidecar = procs(Sidecar(binary, "--service", "slim", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans", "--export-flush-interval", "200ms"))
    echoed = requests.get(sidecar.url("inbound", "/orders/42"), timeout=10).json()
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert TRACEPARENT.match(headers["traceparent"]), echoed

    def spans():
        found = requests.get(collector.url("zipkin", "/api/v2/traces"), params={"serviceName": "slim"}, timeout=5).json()
        return [s for trace in found for s in trace] or None

    span = wait_until(spans, timeout=20, message="the sidecar-only binary's span")[0]
    assert span["name"] == "GET /orders/{id}" and span["kind"] == "SERVER", span


def test_an_unprivileged_sidecar_proxies_both_ways(procs, start_collector, tmp_path):
    """Sidecars run as ordinary users, not root. Every other test here runs as whoever runs the
    suite, root on CI, which once hid a socket option only root may set: as any other user every
    accepted connection was reset. When the suite runs as root this drops to `nobody`."""
    launcher = []
    binary = os.path.join(os.path.dirname(BINARY), "meshtrace-sidecar")
    if os.geteuid() == 0:
        # nobody must be able to reach the binary: the checkout may sit under a private home.
        home = tmp_path / "bin"
        home.mkdir()
        for d in (tmp_path, home):
            os.chmod(d, 0o755)
        copy = str(home / "meshtrace-sidecar")
        subprocess.run(["cp", binary, copy], check=True)
        os.chmod(copy, 0o755)
        binary = copy
        launcher = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    collector = start_collector(extra_args=["--storage", "memory"])
    app = procs(EchoApp())
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans"
    backend = procs(Sidecar(binary, "--service", "backend", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--collector", zipkin, "--export-flush-interval", "200ms", launcher=launcher))
    frontend = procs(Sidecar(binary, "--service", "frontend", "--inbound-port", "-1",
                             "--upstream", f"backend=127.0.0.1:{backend.ports['inbound']}",
                             "--collector", zipkin, "--export-flush-interval", "200ms", launcher=launcher))
    if launcher:
        status = open(f"/proc/{backend.proc.pid}/status").read()
        assert re.search(r"^Uid:\s+65534\b", status, re.M), status
    direct = requests.get(backend.url("inbound", "/items/7"), timeout=10)
    assert direct.status_code == 200, (direct.status_code, direct.text, backend.log())
    proxies = {"http": frontend.url("outbound")}
    echoed = requests.get("http://backend/items/8", proxies=proxies, timeout=10)
    assert echoed.status_code == 200, (echoed.status_code, echoed.text, frontend.log(), backend.log())
    headers = {k.lower(): v for k, v in echoed.json()["headers"]}
    assert TRACEPARENT.match(headers["traceparent"]), headers

    def spans():
        found = requests.get(collector.url("zipkin", "/api/v2/traces"), params={"serviceName": "frontend"}, timeout=5).json()
        return [s for trace in found for s in trace if s["kind"] == "CLIENT"] or None

    client = wait_until(spans, timeout=20, message="the unprivileged egress span")[0]
    assert client["tags"].get("http.status_code") == "200", client


def test_a_low_open_file_limit_caps_connections_instead_of_failing_requests(procs):
    """Under 64 open files (soft and hard, so nothing can be raised), 60 clients at once: the
    sidecar admits what the limit can pair with app connections and refuses the rest at
    connect, and no admitted request fails for want of a descriptor (503 UF). It says so at
    start. Before, it accepted every client and answered most of them 503."""
    app = procs(EchoApp())
    sidecar = procs(Sidecar(BINARY, "--service", "tight", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--exporter", "none", "--log-level", "info", launcher=["prlimit", "--nofile=64:64", "--"]))
    warning = next((l for l in sidecar.lines if "max-downstream-connections lowered" in l), "")
    assert "lowered_to=16" in warning and "open_file_limit=64" in warning, sidecar.log()

    outcomes = []
    lock = threading.Lock()
    start = threading.Barrier(60)

    def client():
        start.wait()
        try:
            with socket.create_connection(("127.0.0.1", sidecar.ports["inbound"]), timeout=10) as s:
                # Slow answers keep every admitted client's app connection open at once.
                s.sendall(b"GET /slow?ms=500 HTTP/1.1\r\nHost: tight\r\n\r\n")
                head = s.recv(400)
            outcome = (head.split(b"\r\n", 1)[0] + b" " + head.rsplit(b"\r\n", 1)[-1]).decode(errors="replace") if head else "closed"
        except OSError as e:
            outcome = f"refused: {e.__class__.__name__}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    served = [o for o in outcomes if o.startswith("HTTP/1.1 200")]
    assert len(outcomes) == 60 and not [o for o in outcomes if o.startswith("HTTP/1.1 5")], outcomes
    assert served, outcomes
    # Once they are gone, new clients are served as before.
    assert requests.get(sidecar.url("inbound", "/after"), timeout=10).status_code == 200
