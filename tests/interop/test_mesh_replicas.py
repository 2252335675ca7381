"""`replicas: 3` under `meshtrace up` (issue 21, part 2): the gateway's sidecar balances over the
three replicas (least-request, two random choices), a replica that answers 503 is ejected while
retries on the other replicas keep every client request whole, a replica killed mid-run costs no
request beyond those in flight, and each span names the replica's address it reached."""
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import wait_until
from test_mesh import Mesh, meshes  # noqa: F401 (meshes is a fixture)

# A standard-library replica: /work answers 200 (or 503 once told to fail), after `ms`;
# /admin/* is the test's own control, called on the app port directly, past every sidecar.
APP = r'''
import json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"failing": False, "served": 0, "failed": 0}
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Replica", os.environ.get("MESHTRACE_INSTANCE", "?"))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, "ok")
        if self.path.startswith("/admin/"):
            with lock:
                if self.path == "/admin/fail":
                    state["failing"] = True
                elif self.path == "/admin/recover":
                    state["failing"] = False
                return self.reply(200, json.dumps(state))
        ms = 20
        if "ms=" in self.path:
            ms = int(self.path.split("ms=")[1].split("&")[0])
        time.sleep(ms / 1000)
        with lock:
            failing = state["failing"]
            state["failed" if failing else "served"] += 1
        self.reply(503 if failing else 200, os.environ.get("MESHTRACE_INSTANCE", "?"))
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def admin(port, action):
    r = requests.get(f"http://127.0.0.1:{port}/admin/{action}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def run_load(url, total, workers):
    """`total` GETs from `workers` threads; returns the statuses (a connection error is 0)."""
    def one(i):
        try:
            return requests.get(f"{url}?i={i}&ms=20", timeout=20).status_code
        except requests.RequestException:
            return 0
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(total)))


def test_three_replicas_balanced_ejected_and_killed(tmp_path, meshes):
    app = tmp_path / "replica.py"
    app.write_text(APP)
    mesh_file = tmp_path / "mesh.yaml"
    mesh_file.write_text(f"""name: replicas
services:
  - name: backend
    command: {sys.executable}
    args: ["{app}", "${{PORT}}"]
    health: /healthz
    replicas: 3
gateway:
  port: 0
  routes:
    /api: backend
collector:
  queryPort: 0
  zipkinPort: 0
  otlpPort: 0
  adminPort: 0
  dataDir: {tmp_path / "data"}
""")
    mesh = Mesh(["up", "-f", str(mesh_file), "--control-port", "0"], tmp_path)
    meshes.append(mesh)
    url = f"{mesh.gateway}/api/work"

    def replicas():
        rows = {s["name"]: s for s in mesh.status()["services"] if s.get("service") == "backend"}
        return rows if len(rows) == 3 and all(r["healthy"] for r in rows.values()) else None
    rows = wait_until(replicas, timeout=60, message="three healthy replicas")
    assert sorted(rows) == ["backend-1", "backend-2", "backend-3"]
    ports = {name: row["appPort"] for name, row in rows.items()}
    inbound = {name: row["inbound"] for name, row in rows.items()}
    assert len(set(ports.values())) == 3 and len(set(inbound.values())) == 3

    # 1. Spread: every replica takes a fair share (least-request over 3: about a third each).
    statuses = run_load(url, 150, 6)
    assert statuses == [200] * 150, statuses
    served = {name: admin(port, "count")["served"] for name, port in ports.items()}
    assert sum(served.values()) == 150, served
    assert all(n >= 25 for n in served.values()), f"per replica: {served}"

    # 2. backend-2 answers 503 from now on: it is ejected after 5 in a row, and each request it
    #    failed was retried on another replica, so clients see no failure.
    admin(ports["backend-2"], "fail")
    statuses = run_load(url, 120, 4)
    assert statuses == [200] * 120, [s for s in statuses if s != 200]
    failed_by_2 = admin(ports["backend-2"], "count")["failed"]
    assert 5 <= failed_by_2 <= 5 + 4, f"backend-2 answered {failed_by_2} requests with 503 (ejected after 5; 4 in flight at most)"
    row = next(s for s in mesh.status()["services"] if s["name"] == "backend-2")
    assert row["ejected"] is True and row["ejections"] >= 1, row
    out = mesh.cli("status")
    assert out.returncode == 0 and "EJECTED" in out.stdout and "now (1x)" in out.stdout, out.stdout
    print("\n" + out.stdout)
    more = run_load(url, 30, 3)
    assert more == [200] * 30 and admin(ports["backend-2"], "count")["failed"] == failed_by_2, "an ejected replica got requests"

    # 3. backend-1 is killed while requests run: the requests it had in flight are the most that
    #    may fail (its sidecar answers 503 for them, retried elsewhere, so usually none do).
    victim = next(s for s in mesh.status()["services"] if s["name"] == "backend-1")["pid"]
    results = []
    loader = threading.Thread(target=lambda: results.extend(run_load(url, 150, 3)))
    loader.start()
    time.sleep(0.5)  # let the load run before the kill, so requests are in flight
    os.kill(victim, signal.SIGKILL)
    loader.join(timeout=120)
    assert not loader.is_alive()
    failures = [s for s in results if s != 200]
    assert len(results) == 150 and len(failures) <= 3, f"{len(failures)} failed: {failures}"
    print(f"\nkilled replica: {len(failures)} of 150 requests failed")

    # 4. Spans name the replica reached: the gateway's spans carry each replica's inbound address,
    #    and none after the ejection names backend-2.
    def gateway_spans():
        r = requests.get(f"{mesh.ui}/api/traces", params={"service": "gateway", "limit": 1000}, timeout=10)
        assert r.status_code == 200, r.text
        spans = [{t["key"]: t["value"] for t in s["tags"]} for trace in r.json()["data"] for s in trace["spans"]
                 if trace["processes"][s["processID"]]["serviceName"] == "gateway"]
        return spans if len(spans) >= 450 else None
    spans = wait_until(gateway_spans, timeout=60, message="the gateway's spans")
    reached = {s.get("upstream_address") for s in spans}
    assert set(inbound.values()) <= reached, f"{reached} vs {inbound}"
    assert reached <= set(inbound.values()), reached
    assert all(s.get("network.peer.address") == s.get("upstream_address") for s in spans)
    retried = [s for s in spans if int(s.get("retry.count", s.get("upstream.retries", "0")) or 0) > 0]
    print(f"retried spans: {len(retried)}")
    mesh.stop()
