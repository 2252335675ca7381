"""CONNECT through the outbound sidecar: what HTTPS clients do when HTTPS_PROXY points at it.
A real TLS server (Python's ssl with a certificate made by openssl), clients we did not write
(Python requests, curl), spans in a real collector. The sidecar never sees inside the TLS."""
import http.server
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest
import requests

from conftest import BINARY, wait_until
from sidecar.procs import Sidecar


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 that answers GET with JSON naming the path."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = json.dumps({"path": self.path, "sni": getattr(self.connection, "server_hostname", None)}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def test_https_through_the_outbound_sidecar_is_tunnelled_and_traced(tls_server, start_collector, monkeypatch):
    port, cert = tls_server
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = Sidecar(BINARY, "--service", "shop", "--inbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans")
    try:
        proxy = sidecar.url("outbound")
        # Python requests, taking the proxy from the environment as an app would.
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.setenv("https_proxy", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A tunnel is reported when it ends: "Connection: close" has the server end it (requests
        # would otherwise keep it open for reuse).
        r = requests.get(f"https://127.0.0.1:{port}/orders?id=1", verify=cert, timeout=10, headers={"Connection": "close"})
        assert r.status_code == 200 and r.json()["path"] == "/orders?id=1", r.text

        # curl sends CONNECT for https:// through -x by itself; the certificate names localhost.
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", cert, "-x", proxy,
                              f"https://localhost:{port}/cart", "-w", "\n%{http_code}"],
                             capture_output=True, text=True, timeout=20)
        body, _, code = out.stdout.rpartition("\n")
        assert code == "200" and json.loads(body)["path"] == "/cart", out

        # A refused target is the proxy's 503 UF, which curl reports as the CONNECT's failure.
        refused = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", proxy, "https://127.0.0.1:1/", "-o", "/dev/null",
                                  "-w", "%{http_connect}"], capture_output=True, text=True, timeout=20)
        assert refused.stdout == "503", refused

        def tunnel_spans():
            found = requests.get(collector.url("zipkin", "/api/v2/traces"),
                                 params={"serviceName": "shop", "limit": 50}, timeout=5).json()
            spans = [s for trace in found for s in trace if s["name"].startswith("CONNECT ")]
            return spans if len(spans) >= 3 else None

        spans = wait_until(tunnel_spans, timeout=20, message="three CONNECT spans")
        by_target = {s["name"]: s for s in spans}
        ok = by_target[f"CONNECT 127.0.0.1:{port}"]
        assert ok["kind"] == "CLIENT"
        assert ok["tags"]["http.method"] == "CONNECT"
        assert ok["tags"]["http.url"] == ok["tags"]["url.full"] == f"127.0.0.1:{port}", "a tunnel's URL is its target"
        assert ok["tags"]["http.status_code"] == "200"
        assert ok["tags"]["upstream_cluster"] == "PassthroughCluster"
        assert int(ok["tags"]["response_size"]) > 0 and int(ok["tags"]["request_size"]) > 0, ok["tags"]
        assert "error" not in ok["tags"]
        assert by_target[f"CONNECT localhost:{port}"]["tags"]["http.status_code"] == "200"
        failed = by_target["CONNECT 127.0.0.1:1"]
        assert failed["tags"]["http.status_code"] == "503" and failed["tags"]["response_flags"] == "UF", failed["tags"]
        assert failed["tags"]["error"] == "true"

        # Istio's TCP metrics for the two tunnels, as Kiali reads them for passed-through TLS.
        metrics = requests.get(sidecar.url("metrics", "/stats/prometheus"), timeout=5).text

        def total(name):
            return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + "{"))

        assert total("istio_tcp_connections_opened_total") == 2, metrics
        assert total("istio_tcp_connections_closed_total") == 2
        assert total("istio_tcp_sent_bytes_total") > 0 and total("istio_tcp_received_bytes_total") > 0
        assert 'request_protocol="tcp"' in metrics
    finally:
        sidecar.kill()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def h2c_app(tmp_path):
    """nginx speaking HTTP/2 with prior knowledge (h2c), as a gRPC server does."""
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{port} http2; location / {{ return 200 "h2c ok $request_uri $server_protocol\\n"; }} }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, timeout=20, message="nginx (h2c) listening")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_h2c_prior_knowledge_is_relayed_per_request_by_the_inbound_sidecar(h2c_app, start_collector):
    """HTTP/2 without TLS (how gRPC talks) reaches the app through its sidecar: curl speaks
    HTTP/2 to the sidecar and nginx hears HTTP/2 from it, and each request is its own span and
    Istio request metric (gRPC itself: test_sidecar_grpc.py)."""
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = Sidecar(BINARY, "--service", "grpcsvc", "--app-port", str(h2c_app), "--outbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans")
    try:
        # One curl per request: curl 7.88 fails a second request on a reused prior-knowledge
        # connection with "Error in the HTTP2 framing layer", against nginx directly too.
        # (Many calls on one connection: the grpcio test.)
        for path in ("/pkg.Svc/Call", "/pkg.Svc/Other"):
            out = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", sidecar.url("inbound", path),
                                  "-w", "%{http_version} %{http_code}"], capture_output=True, text=True, timeout=20)
            assert out.stdout == f"h2c ok {path} HTTP/2.0\n2 200", out

        def spans():
            found = requests.get(collector.url("zipkin", "/api/v2/traces"), params={"serviceName": "grpcsvc"}, timeout=5).json()
            spans = [s for trace in found for s in trace]
            return spans if len(spans) >= 2 else None

        by_name = {s["name"]: s for s in wait_until(spans, timeout=20, message="a span per h2c request")}
        assert set(by_name) == {"GET /pkg.Svc/Call", "GET /pkg.Svc/Other"}, by_name.keys()
        span = by_name["GET /pkg.Svc/Call"]
        assert span["kind"] == "SERVER" and span["tags"]["http.protocol"] == "HTTP/2" and span["tags"]["http.status_code"] == "200"
        assert int(span["tags"]["response_size"]) == len("h2c ok /pkg.Svc/Call HTTP/2.0\n")
        metrics = requests.get(sidecar.url("metrics", "/stats/prometheus"), timeout=5).text
        assert any(line.startswith("istio_requests_total{") and 'request_protocol="http"' in line and line.endswith(" 2")
                   for line in metrics.splitlines()), metrics
    finally:
        sidecar.kill()
