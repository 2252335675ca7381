"""Span names under `meshtrace up` stay few (issue 16, item 5): ids like `r50` under a declared
route template give one operation, undeclared ones are learned, and past the cap new names
fold into `METHOD /prefix/*`. Also: a CLIENT span's http.url is what the app asked for."""
import os
import signal
import subprocess
import sys
import threading

import requests

from conftest import BINARY, wait_until

# A standard-library app that answers 200 to every GET, and calls its upstream (through its
# DATABASE_URL egress listener, by address) for /api/reports/*.
APP = r'''
import os, sys, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok"
        upstream = os.environ.get("DATABASE_URL")
        if upstream and self.path.startswith("/api/reports/"):
            with urllib.request.urlopen(upstream + "/records", timeout=10) as r:
                body = r.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def test_route_templates_learned_ids_and_the_cap(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(APP)
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(f"""name: routes
services:
  - name: reports
    command: {sys.executable}
    args: ["{app}", "${{PORT}}"]
    health: /healthz
    upstreams: [database]
    routes: ["/api/reports/{{id}}"]
  - name: ids
    command: {sys.executable}
    args: ["{app}", "${{PORT}}"]
    health: /healthz
  - name: database
    command: {sys.executable}
    args: ["{app}", "${{PORT}}"]
    health: /healthz
gateway:
  port: 0
  routes:
    /api: reports
    /ids: ids
    /many: ids
collector:
  queryPort: 0
  zipkinPort: 0
  otlpPort: 0
  adminPort: 0
  dataDir: {tmp_path / "data"}
""")
    env = dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1")
    proc = subprocess.Popen([BINARY, "up", "-f", str(mesh), "--control-port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    log = lambda: "".join(lines)
    try:
        def urls():
            assert proc.poll() is None, log()
            text = log()
            if "control:" not in text:
                return None
            grab = lambda label: text.split(label, 1)[1].split()[0].rstrip("/")
            return grab("UI:"), grab("gateway:")
        ui, gateway = wait_until(urls, timeout=90, message=f"the mesh\n{log()}")
        session = requests.Session()
        for i in range(60):
            assert session.get(f"{gateway}/api/reports/r{i}", timeout=10).status_code == 200
            assert session.get(f"{gateway}/ids/ord-{i + 7:x}3a/items", timeout=10).status_code == 200
        for i in range(520):  # words, no digits: nothing to learn, so the cap must hold them
            word = "".join(chr(ord("a") + int(d)) for d in f"{i:03d}")
            assert session.get(f"{gateway}/many/{word}", timeout=10).status_code == 200

        def operations(service):
            r = requests.get(f"{ui}/api/operations", params={"service": service, "spanKind": "server"}, timeout=10)
            assert r.status_code == 200, r.text
            return {op["name"] for op in r.json()["data"]}

        # 1. Declared template: every r-id is one operation.
        wait_until(lambda: "GET /api/reports/{id}" in operations("reports"), timeout=30, message="templated operation")
        assert operations("reports") == {"GET /api/reports/{id}"}

        # 2. Learned: after the first few distinct ids, the position is {id}.
        def ids_ops():
            ops = {o for o in operations("ids") if not o.startswith("GET /many")}
            return ops if "GET /ids/{id}/items" in ops else None
        ids = wait_until(ids_ops, timeout=30, message="learned operation")
        assert len(ids) <= 11, sorted(ids)

        # 3. The cap: 520 distinct words make at most 500 names plus the folded one.
        def many():
            ops = {o for o in operations("ids") if o.startswith("GET /many")}
            return ops if "GET /many/*" in ops else None
        capped = wait_until(many, timeout=30, message="folded names")
        assert len(capped) <= 501, len(capped)

        # proxy-config shows what was learned and folded, and the egress listener.
        out = subprocess.run([BINARY, "proxy-config", "ids", "--mesh", "routes"], capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        assert '"/ids/{id}/items"' not in out.stdout  # learned holds the prefix template, not a whole route
        assert '"folded"' in out.stdout and '"learned"' in out.stdout, out.stdout
        out = subprocess.run([BINARY, "proxy-config", "reports", "--mesh", "routes"], capture_output=True, text=True, env=env, timeout=30)
        assert '"egress_listeners"' in out.stdout and "DATABASE_URL" in out.stdout, out.stdout
        assert '"/api/reports/{id}"' in out.stdout  # route_templates

        # http.url of the CLIENT span toward database is the logical URL; the dialed address aside.
        def client_span():
            r = requests.get(f"{ui}/api/traces", params={"service": "reports", "limit": 20}, timeout=10)
            for trace in r.json()["data"]:
                for span in trace["spans"]:
                    tags = {t["key"]: t["value"] for t in span["tags"]}
                    if tags.get("span.kind") == "client" and trace["processes"][span["processID"]]["serviceName"] == "reports":
                        return tags
            return None
        tags = wait_until(client_span, timeout=30, message="a CLIENT span from reports")
        assert tags["http.url"] == "http://database/records", tags
        assert tags["server.address"] == "127.0.0.1" and int(tags["server.port"]) > 0, tags
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
