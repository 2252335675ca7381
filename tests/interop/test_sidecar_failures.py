"""`meshtrace sidecar` when things go wrong, as real processes: an upstream that refuses, is slow
or never connects, hosts outside the registry, smuggled or oversized requests, a client that
stops mid-head. Each answer is checked as a client sees it (status and response flags) and, where
there is one, as the span says it. Split from test_sidecar.py, which keeps the paths that work."""
import json
import re
import socket
import time
import uuid

import pytest
import requests

from conftest import BINARY, refused_port, zipkin_trace
from sidecar.procs import EchoApp, Sidecar


def test_unreachable_upstream_is_503_uf_in_span_and_metrics(procs, start_collector):
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = procs(Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1",
                            "--upstream", f"dead=127.0.0.1:{refused_port()}",
                            "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}"))
    trace_id = uuid.uuid4().hex
    r = requests.get("http://dead/x", proxies={"http": sidecar.url("outbound")},
                     headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}, timeout=10)
    assert r.status_code == 503, r.text
    flags = r.headers["x-meshtrace-response-flags"].split(",")
    assert "UF" in flags and "URX" in flags
    span = zipkin_trace(collector, trace_id, 1)[0]
    assert span["tags"]["response_flags"] == "UF,URX"
    assert span["tags"]["http.status_code"] == "503"
    assert span["tags"]["error"] == "true"
    assert span["tags"]["retry.count"] == "2"
    metrics = requests.get(sidecar.url("metrics", "/stats/prometheus"), timeout=5).text
    assert re.search(r'istio_requests_total\{[^}]*response_code="503"[^}]*\}', metrics) or \
        re.search(r'istio_requests_total\{[^}]*response_flags="UF,URX"[^}]*\}', metrics), metrics


def test_slow_upstream_is_504_ut(procs):
    app = procs(EchoApp())
    sidecar = procs(Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1", "--request-timeout", "300ms",
                            "--upstream", f"slow=127.0.0.1:{app.port}"))
    started = time.monotonic()
    r = requests.get("http://slow/slow?ms=30000", proxies={"http": sidecar.url("outbound")}, timeout=60)
    # Order, not speed: a 504 UT means the proxy's timer fired before the app's answer came.
    assert r.status_code == 504, r.text
    assert r.headers["x-meshtrace-response-flags"] == "UT"
    assert time.monotonic() - started >= 0.3, "not before the timeout"


def test_per_try_timeout_retries_then_answers_504_ut_urx(procs):
    """--per-try-timeout: each attempt gets 200 ms for its response head; the echo app's /slow
    never makes it, so both attempts (one retry) run out, long before the request timeout."""
    app = procs(EchoApp())
    sidecar = procs(Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1", "--per-try-timeout", "200ms",
                            "--max-retries", "1", "--upstream", f"slow=127.0.0.1:{app.port}"))
    started = time.monotonic()
    r = requests.get("http://slow/slow?ms=30000", proxies={"http": sidecar.url("outbound")}, timeout=60)
    elapsed = time.monotonic() - started
    assert r.status_code == 504, r.text
    assert r.headers["x-meshtrace-response-flags"] == "UT,URX"
    assert "per-try timeout after 200 ms after 1 retry" in r.text
    assert elapsed >= 0.4, elapsed  # two tries of 200 ms; the 504 itself says the app had not answered
    dump = requests.get(sidecar.url("admin", "/config_dump"), timeout=5).json()
    assert dump["policies"]["per_try_timeout_ms"] == 200


def test_connect_timeout_is_504_ut(procs):
    # A listener whose accept queue is full drops further SYNs, so connects hang.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    port = blackhole.getsockname()[1]
    # Connect one at a time until a connect hangs: the queue is full from then on. Each connect
    # that completes did so on its own (no sleep standing in for the handshakes); a kernel that
    # lets eight through accepts beyond the backlog, and the test cannot provoke a timeout there.
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.settimeout(2)
        try:
            c.connect(("127.0.0.1", port))
        except (socket.timeout, OSError):
            c.close()
            break
        fillers.append(c)
    else:
        for c in fillers:
            c.close()
        blackhole.close()
        pytest.skip("this kernel accepts connections beyond the backlog; cannot provoke a connect timeout")
    try:
        sidecar = procs(Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1", "--connect-timeout", "200ms",
                                "--max-retries", "0", "--upstream", f"hang=127.0.0.1:{port}"))
        r = requests.get("http://hang/x", proxies={"http": sidecar.url("outbound")}, timeout=10)
        assert r.status_code == 504, r.text
        assert r.headers["x-meshtrace-response-flags"] == "UT"
    finally:
        for c in fillers:
            c.close()
        blackhole.close()


def test_registry_only_refuses_unknown_hosts_and_allow_any_passes_them(procs):
    app = procs(EchoApp())
    strict = procs(Sidecar(BINARY, "--inbound-port", "-1", "--outbound-policy", "registry-only"))
    r = requests.get(f"http://127.0.0.1:{app.port}/x", proxies={"http": strict.url("outbound")}, timeout=10)
    assert r.status_code == 502 and r.headers["x-meshtrace-response-flags"] == "NR"
    open_ = procs(Sidecar(BINARY, "--inbound-port", "-1", "--outbound-policy", "allow-any"))
    r = requests.get(f"http://127.0.0.1:{app.port}/x", proxies={"http": open_.url("outbound")}, timeout=10)
    assert r.status_code == 200 and json.loads(r.text)["path"] == "/x"


def raw(port, data, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        return b"".join(chunks).decode("latin-1")


def test_smuggling_and_oversized_headers_are_refused(procs):
    app = procs(EchoApp())
    sidecar = procs(Sidecar(BINARY, "--service", "backend", "--app-port", str(app.port), "--outbound-port", "-1"))
    port = sidecar.ports["inbound"]
    for req in [b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4x\r\n\r\nabcd"]:
        resp = raw(port, req)
        assert resp.startswith("HTTP/1.1 400"), (req, resp)
    resp = raw(port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (65 * 1024) + b"\r\n\r\n")
    assert resp.startswith("HTTP/1.1 431"), resp[:200]
    # Still serving afterwards.
    assert requests.get(sidecar.url("inbound", "/ok"), timeout=5).status_code == 200


def test_header_timeout_answers_408(procs):
    app = procs(EchoApp())
    sidecar = procs(Sidecar(BINARY, "--app-port", str(app.port), "--outbound-port", "-1", "--header-timeout", "300ms"))
    # The 408 itself says the sidecar answered before raw()'s own 30 s guard closed the socket.
    resp = raw(sidecar.ports["inbound"], b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=30)
    assert resp.startswith("HTTP/1.1 408"), resp
