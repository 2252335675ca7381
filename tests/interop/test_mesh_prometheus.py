"""Prometheus beside `meshtrace up` (issue 26): Debian's real `prometheus`, configured only from
`meshtrace prometheus-config`, discovers every sidecar through the control plane, answers
Kiali's graph query and a p95 from Istio's histogram, and keeps scraping when the mesh comes
back on new ports. Also `up --prometheus`, with and without Prometheus installed."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import BINARY, wait_until

# Required, not skipped: scripts/test installs Debian's package.
PROMETHEUS = shutil.which("prometheus") or "prometheus"

# caller -> callee through the caller's sidecar (CALLEE_URL, the per-upstream egress listener).
APP = r'''
import os, sys, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok"
        upstream = os.environ.get("CALLEE_URL")
        if upstream and self.path.startswith("/work"):
            with urllib.request.urlopen(upstream + "/data", timeout=10) as r:
                body = r.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_mesh(tmp_path, name="prom", prometheus=None):
    app = tmp_path / "app.py"
    app.write_text(APP)
    text = f"""name: {name}
services:
  - name: caller
    command: {sys.executable}
    args: ["{app}", "${{PORT}}"]
    upstreams: [callee]
  - name: callee
    command: {sys.executable}
    args: ["{app}", "${{PORT}}"]
gateway:
  port: 0
  routes:
    /: caller
collector:
  queryPort: 0
  zipkinPort: 0
  otlpPort: 0
  adminPort: 0
  dataDir: {tmp_path / "data"}
"""
    if prometheus is not None:
        text += f"prometheus:\n  port: 0\n  scrapeInterval: 1s\n"
    path = tmp_path / "mesh.yaml"
    path.write_text(text)
    return path


class Process:
    """A process whose output is collected; stopped with SIGTERM (then SIGKILL) at the end."""

    def __init__(self, args, env=None, cwd=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def log(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=90):
        def seen():
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.log()}"
            return text in self.log()
        wait_until(seen, timeout=timeout, message=f"{text!r} in the output\n{self.log()[-3000:]}")

    def url(self, label):
        return self.log().split(label, 1)[1].split()[0].rstrip("/")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def processes():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


def up(mesh, env, control_port, processes, *extra):
    p = Process([BINARY, "up", "-f", str(mesh), "--control-port", str(control_port), *extra], env=env)
    processes.append(p)
    p.wait_for("control:")
    return p


def query(prom, promql):
    r = requests.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def active_targets(prom):
    r = requests.get(f"{prom}/api/v1/targets", params={"state": "active"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["activeTargets"]


def traffic(gateway, n=40):
    session = requests.Session()
    for i in range(n):
        assert session.get(f"{gateway}/work/{i}", timeout=10).status_code == 200


def test_real_prometheus_from_prometheus_config(tmp_path, processes):
    env = dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1")
    mesh = write_mesh(tmp_path)
    control = free_port()  # fixed across the restart below: Prometheus's discovery URL stays
    first = up(mesh, env, control, processes)

    out = subprocess.run([BINARY, "prometheus-config", "--mesh", "prom", "--scrape-interval", "1s"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    config = tmp_path / "prometheus.yml"
    config.write_text(out.stdout)
    check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=30) \
        if shutil.which("promtool") else None
    assert check is None or check.returncode == 0, check.stdout + check.stderr

    port = free_port()
    prom_url = f"http://127.0.0.1:{port}"
    prom = Process([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], cwd=str(tmp_path))
    processes.append(prom)
    def ready():
        assert prom.proc.poll() is None, f"prometheus exited:\n{prom.log()}"
        try:
            return requests.get(f"{prom_url}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    wait_until(ready, timeout=60, message="prometheus ready")

    # 1. Every sidecar (and the gateway, and the collector) discovered and scraped.
    expected = {"caller", "callee", "gateway", "meshtrace-collector"}
    def all_up():
        targets = active_targets(prom_url)
        healthy = {t["labels"].get("service") for t in targets if t["health"] == "up"}
        return targets if expected <= healthy else None
    targets = wait_until(all_up, timeout=60, message="every sidecar target up")
    for t in targets:
        assert t["labels"]["meshtrace_mesh"] == "prom" and t["labels"]["namespace"] == "default", t["labels"]
    old_instances = {t["labels"]["service"]: t["labels"]["instance"] for t in targets}

    # 2. Kiali's graph query shows the caller -> callee edge.
    traffic(first.url("gateway:"))
    kiali = ('sum(rate(istio_requests_total{reporter="destination"}[1m])) '
             'by (source_workload, destination_service_name, response_code)')
    def edge():
        rows = query(prom_url, kiali)
        return [r for r in rows if r["metric"].get("source_workload") == "caller"
                and r["metric"].get("destination_service_name") == "callee" and r["metric"].get("response_code") == "200"
                and float(r["value"][1]) > 0]
    assert wait_until(edge, timeout=60, message="the caller -> callee edge in Kiali's query")

    # 3. A p95 from Istio's duration histogram.
    p95 = ('histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket'
           '{reporter="destination",destination_service_name="callee"}[1m])) by (le))')
    def p95_value():
        rows = query(prom_url, p95)
        return rows and rows[0]["value"][1] not in ("NaN", "+Inf") and float(rows[0]["value"][1]) > 0
    assert wait_until(p95_value, timeout=60, message="a p95 for callee")

    # Istio's Grafana dashboards: the Mesh dashboard's global volume (reported by the source side),
    # the Service dashboard's server volume by FQDN, and the component versions panel.
    assert wait_until(lambda: [r for r in query(prom_url, 'round(sum(rate(istio_requests_total{reporter=~"source|waypoint"}[1m])), 0.001)')
                               if float(r["value"][1]) > 0], timeout=30, message="mesh dashboard volume")
    assert [r for r in query(prom_url, 'sum(rate(istio_requests_total{reporter="destination",'
                                       'destination_service="callee.default.svc.cluster.local"}[1m]))') if float(r["value"][1]) > 0]
    builds = query(prom_url, 'sum(istio_build) by (component, tag)')
    assert builds and builds[0]["metric"] == {"component": "proxy", "tag": "meshtrace"} and float(builds[0]["value"][1]) >= 3, builds

    # 4. A crashed service is restarted by the mesh and its sidecar keeps being scraped.
    callee_pid = next(s["pid"] for s in requests.get(f"http://127.0.0.1:{control}/mesh/status", timeout=10).json()["services"]
                      if s["name"] == "callee")
    os.kill(callee_pid, signal.SIGKILL)
    def restarted():
        s = next(s for s in requests.get(f"http://127.0.0.1:{control}/mesh/status", timeout=10).json()["services"]
                 if s["name"] == "callee")
        return s["restarts"] >= 1 and s["healthy"]
    wait_until(restarted, timeout=30, message="callee restarted")

    # 5. The whole mesh comes back on new ports: Prometheus follows through discovery alone.
    assert first.stop() == 0, first.log()[-2000:]
    second = up(mesh, env, control, processes)
    def moved():
        targets = active_targets(prom_url)
        now = {t["labels"]["service"]: t["labels"]["instance"] for t in targets if t["health"] == "up"}
        return now if expected <= set(now) and all(now[s] != old_instances[s] for s in ("caller", "callee", "gateway")) else None
    new_instances = wait_until(moved, timeout=60, message="targets on the new ports, up")
    restarted_at = time.time()
    traffic(second.url("gateway:"))
    def scraped_after_restart():
        rows = query(prom_url, f'istio_requests_total{{reporter="destination",destination_service_name="callee",'
                               f'instance="{new_instances["callee"]}"}}')
        return rows and float(rows[0]["value"][0]) > restarted_at
    assert wait_until(scraped_after_restart, timeout=60, message="samples from the new callee sidecar")


def test_up_with_prometheus_runs_and_stops_it(tmp_path, processes):
    env = dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1")
    mesh = write_mesh(tmp_path, prometheus=True)
    run = up(mesh, env, 0, processes)
    assert "prometheus: http://127.0.0.1:" in run.log(), run.log()
    prom_url = run.url("prometheus:")
    def discovered():
        healthy = {t["labels"].get("service") for t in active_targets(prom_url) if t["health"] == "up"}
        return {"caller", "callee", "gateway"} <= healthy
    wait_until(discovered, timeout=60, message="the embedded prometheus scraping every sidecar")
    pids = subprocess.run(["pgrep", "-f", f"web.listen-address={prom_url.split('//')[1]}"], capture_output=True, text=True).stdout.split()
    assert pids, "prometheus process not found"
    assert run.stop() == 0, run.log()[-2000:]
    wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), timeout=10, message="prometheus stopped with the mesh")


def test_up_with_prometheus_missing_says_how_to_install_and_runs_on(tmp_path, processes):
    bin_dir = tmp_path / "bin"  # a PATH with python but no prometheus
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1", PATH=str(bin_dir))
    mesh = write_mesh(tmp_path)
    run = up(mesh, env, 0, processes, "--prometheus")
    assert "prometheus: not started: prometheus is not installed" in run.log() and "apt-get install prometheus" in run.log(), run.log()
    assert run.proc.poll() is None
    assert requests.get(run.url("gateway:") + "/work/1", timeout=10).status_code == 200
