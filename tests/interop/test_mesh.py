"""`meshtrace demo` and `meshtrace up` as a person runs them: one trace across the mesh,
broken propagation, live sampling changes without restarts, clean stops and readable errors."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import BINARY, wait_until

EPHEMERAL = ["--query-port", "0", "--zipkin-port", "0", "--otlp-http-port", "0", "--collector-admin-port", "0",
             "--gateway-port", "0", "--control-port", "0"]


class Mesh:
    """A running `meshtrace demo` or `up`, with its printed URLs parsed."""

    def __init__(self, args, tmp_path, env=None):
        self.state_dir = str(tmp_path / "state")
        environment = dict(os.environ, MESHTRACE_STATE_DIR=self.state_dir, NO_COLOR="1", **(env or {}))
        self.proc = subprocess.Popen([BINARY, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=environment, cwd=str(tmp_path))
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.ui = self.wait_for(r"UI:\s+(http://\S+)/").group(1)
        self.gateway = self.wait_for(r"gateway:\s+(http://\S+)").group(1)
        self.control = self.wait_for(r"control:\s+(http://\S+)").group(1)

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def log(self):
        return "".join(self.lines)

    def wait_for(self, pattern, timeout=90):
        def find():
            if self.proc.poll() is not None:
                raise AssertionError(f"mesh exited with {self.proc.returncode}:\n{self.log()}")
            return re.search(pattern, self.log())
        return wait_until(find, timeout=timeout, message=f"output matching {pattern!r}\n{self.log()[-3000:]}")

    def cli(self, *args):
        return subprocess.run([BINARY, *args, "--control", self.control], capture_output=True, text=True, timeout=30)

    def status(self):
        out = self.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def traces(self, service, start_us, end_us, limit=1000):
        r = requests.get(f"{self.ui}/api/traces", params={"service": service, "start": start_us, "end": end_us, "limit": limit}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def stop(self, sig=signal.SIGINT, timeout=30):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def service_pids(mesh):
    return {s["name"]: s["pid"] for s in mesh.status()["services"] if s.get("pid")}


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive: its parent (the mesh) has exited without reaping only if it leaked
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def spans_by_service(trace):
    procs = trace["processes"]
    out = {}
    for s in trace["spans"]:
        kind = next((t["value"] for t in s["tags"] if t["key"] == "span.kind"), "internal")
        out.setdefault((procs[s["processID"]]["serviceName"], kind), []).append(s)
    return out


@pytest.fixture
def meshes():
    started = []
    yield started
    # SIGTERM first: the mesh then stops its services. A SIGKILL straight away (as this did)
    # left every service process orphaned, dozens per test run.
    for m in started:
        if m.proc.poll() is None:
            try:
                m.stop(signal.SIGTERM, timeout=30)
            except subprocess.TimeoutExpired:
                pass
        m.kill()


def test_demo_trace_crosses_the_whole_mesh(tmp_path, meshes):
    mesh = Mesh(["demo", *EPHEMERAL, "--requests", "15", "--rate", "15"], tmp_path)
    meshes.append(mesh)
    trace_id = mesh.wait_for(r"example trace: \S+/trace/([0-9a-f]+)").group(1)
    # The example trace is complete once every sidecar has flushed (about a second).
    seen = {}
    def complete():
        r = requests.get(f"{mesh.ui}/api/traces/{trace_id}", timeout=10)
        trace = r.json()["data"][0]
        seen["spans"] = sorted(f"{service}/{kind}: {s['operationName']}" for (service, kind), spans
                               in spans_by_service(trace).items() for s in spans)
        return trace if len(trace["spans"]) >= 8 else None
    try:
        # Generous: a sidecar retries a batch the collector did not take for up to 30 s.
        trace = wait_until(complete, timeout=45, message="8 spans in the example trace")
    except AssertionError as failure:
        raise AssertionError(f"{failure}\nspans present: {seen.get('spans')}\nmesh log:\n{mesh.log()[-6000:]}") from None
    by_id = {s["spanID"]: s for s in trace["spans"]}
    parent = {s["spanID"]: (s["references"][0]["spanID"] if s["references"] else None) for s in trace["spans"]}
    assert all(p is None or p in by_id for p in parent.values()), "every parent is in the trace"
    assert sum(p is None for p in parent.values()) == 1, "exactly one root"
    kinds = spans_by_service(trace)
    gw_server, = kinds[("gateway", "server")]
    gw_client, = kinds[("gateway", "client")]
    fe_server, = kinds[("frontend", "server")]
    fe_client, = kinds[("frontend", "client")]
    be_server, = kinds[("backend", "server")]
    be_client, = kinds[("backend", "client")]
    db_server, = kinds[("database", "server")]
    business, = [s for s in trace["spans"] if s["operationName"] == "compute-report"]
    assert parent[gw_server["spanID"]] is None
    assert parent[gw_client["spanID"]] == gw_server["spanID"]
    assert parent[fe_server["spanID"]] == gw_client["spanID"]
    assert parent[fe_client["spanID"]] == fe_server["spanID"]
    assert parent[be_server["spanID"]] == fe_client["spanID"]
    assert parent[be_client["spanID"]] == be_server["spanID"]
    assert parent[db_server["spanID"]] == be_client["spanID"]
    assert parent[business["spanID"]] == be_server["spanID"], "the app's business span joins the sidecar's trace"
    assert trace["processes"][business["processID"]]["serviceName"] == "backend"
    assert mesh.stop(signal.SIGINT) == 0, mesh.log()[-2000:]


def test_demo_broken_splits_traces_at_backend(tmp_path, meshes):
    mesh = Mesh(["demo", "--broken", *EPHEMERAL, "--requests", "10", "--rate", "20"], tmp_path)
    meshes.append(mesh)
    mesh.wait_for(r"traffic done")
    now = int(time.time() * 1e6)
    def database_traces():
        traces = mesh.traces("database", now - 600_000_000, now + 60_000_000)
        return traces if len(traces) >= 5 else None
    traces = wait_until(database_traces, timeout=20, message="database traces")
    for trace in traces:
        roots = [s for s in trace["spans"] if not s["references"]]
        assert len(roots) == 1
        root = roots[0]
        assert trace["processes"][root["processID"]]["serviceName"] == "backend", "the database call starts its own trace"
        assert any(t["key"] == "span.kind" and t["value"] == "client" for t in root["tags"])
        services = {trace["processes"][s["processID"]]["serviceName"] for s in trace["spans"]}
        assert "gateway" not in services and "frontend" not in services
    gateway_traces = mesh.traces("gateway", now - 600_000_000, now + 60_000_000)
    assert gateway_traces
    for trace in gateway_traces:
        services = {trace["processes"][s["processID"]]["serviceName"] for s in trace["spans"]}
        assert "database" not in services
    mesh.stop()


class Traffic(threading.Thread):
    """Steady requests through the gateway, each remembered with its send time."""

    def __init__(self, url, rate=25):
        super().__init__(daemon=True)
        self.url, self.interval, self.sent = url, 1.0 / rate, []
        self.stop_event = threading.Event()

    def run(self):
        session = requests.Session()
        i = 0
        while not self.stop_event.is_set():
            i += 1
            try:
                r = session.get(f"{self.url}/api/reports/{i % 20 + 1}", timeout=10)
                self.sent.append((time.time(), r.status_code))
            except requests.RequestException:
                self.sent.append((time.time(), 0))
            self.stop_event.wait(self.interval)


def write_mesh(path, sampling):
    path.write_text(f"""name: live
services:
  - name: frontend
    command: ${{MESHTRACE}}
    args: [demo-service, frontend, --port, "${{PORT}}"]
    upstreams: [backend]
  - name: backend
    command: ${{MESHTRACE}}
    args: [demo-service, backend, --port, "${{PORT}}"]
    upstreams: [database]
  - name: database
    command: ${{MESHTRACE}}
    args: [demo-service, database, --port, "${{PORT}}"]
gateway:
  port: 0
  routes:
    /: frontend
telemetry:
  sampling: {sampling}
collector:
  queryPort: 0
  zipkinPort: 0
  otlpPort: 0
  adminPort: 0
  dataDir: {path.parent / "data"}
""")


def test_live_sampling_change_without_restarts(tmp_path, meshes):
    mesh_file = tmp_path / "mesh.yaml"
    write_mesh(mesh_file, 100)
    mesh = Mesh(["up", "-f", str(mesh_file), "--control-port", "0"], tmp_path)
    meshes.append(mesh)
    pids_before = service_pids(mesh)
    assert set(pids_before) == {"frontend", "backend", "database"}
    traffic = Traffic(mesh.gateway)
    traffic.start()
    try:
        def traces_between(a, b):
            return len(mesh.traces("gateway", int(a * 1e6), int(b * 1e6)))

        t0 = time.time()
        wait_until(lambda: traces_between(t0, time.time()) >= 20, timeout=30, message="traces at 100%")

        # 1. The CLI: sampling 0 stops new traces. The control plane answers once every sidecar
        # has the setting, so order, not speed: after 20 more answered requests (however long
        # four debug hops take for them), no trace may have started after the CLI returned. The
        # second of grace covers only a request the gateway had read just before the change.
        out = mesh.cli("telemetry", "set", "--sampling", "0")
        assert out.returncode == 0, out.stderr + f"\nmesh exit: {mesh.proc.poll()}\nmesh log:\n{mesh.log()[-4000:]}"
        quiet_from = time.time() + 1
        wait_until(lambda: len([s for s in traffic.sent if s[0] > quiet_from and s[1] == 200]) >= 20,
                   timeout=120, message="20 answered requests after the change")
        assert traces_between(quiet_from, time.time()) == 0, "no traces should start after sampling 0"

        # 2. Saving mesh.yaml: back to 100% within 2 s.
        write_mesh(mesh_file, 100)
        saved = time.time()
        wait_until(lambda: traces_between(saved, time.time()) >= 10, timeout=60, message="traces again after editing mesh.yaml")
        assert mesh.status()["telemetry"]["sampling"] == 100
    finally:
        traffic.stop_event.set()
        traffic.join()
    assert service_pids(mesh) == pids_before, "no service was restarted"
    assert mesh.proc.poll() is None
    assert mesh.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_leaves_no_processes(tmp_path, meshes, sig):
    mesh = Mesh(["demo", *EPHEMERAL, "--requests", "0"], tmp_path)
    meshes.append(mesh)
    pids = list(service_pids(mesh).values())
    assert len(pids) == 3 and all(alive(p) for p in pids)
    assert mesh.stop(sig) == 0, mesh.log()[-2000:]
    assert not [p for p in pids if alive(p)], "service processes outlived the mesh"
    out = subprocess.run(["pgrep", "-f", "demo-service"], capture_output=True, text=True)
    leftover = [int(p) for p in out.stdout.split() if int(p) in pids]
    assert not leftover


def test_crashed_service_is_restarted(tmp_path, meshes):
    mesh = Mesh(["demo", *EPHEMERAL, "--requests", "0"], tmp_path)
    meshes.append(mesh)
    before = service_pids(mesh)["backend"]
    os.kill(before, signal.SIGKILL)
    def restarted():
        s = next(s for s in mesh.status()["services"] if s["name"] == "backend")
        return s if s["restarts"] >= 1 and s.get("pid") not in (None, before) and s["healthy"] else None
    state = wait_until(restarted, timeout=30, message="backend restarted and healthy")
    assert state["pid"] != before
    assert "exited with status" in mesh.log()
    r = requests.get(f"{mesh.gateway}/api/reports/3", timeout=10)
    assert r.status_code == 200, r.text
    mesh.stop()


def test_broken_mesh_yaml_names_line_and_field(tmp_path):
    bad = tmp_path / "mesh.yaml"
    bad.write_text("services:\n  - name: web\n    command: ./web\n    port: eighty\n")
    out = subprocess.run([BINARY, "up", "-f", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert f"{bad}:4:" in out.stderr and "services[0].port" in out.stderr and "whole number" in out.stderr, out.stderr
    bad.write_text("services:\n  - name: web\n    comand: ./web\n")
    out = subprocess.run([BINARY, "up", "-f", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and ":3:" in out.stderr and "did you mean 'command'" in out.stderr, out.stderr


def test_demo_reports_a_taken_port(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([BINARY, "demo", *EPHEMERAL[:-4], "--gateway-port", str(port), "--control-port", "0"],
                             capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert f"port {port} is already in use" in out.stderr and "--gateway-port" in out.stderr, out.stderr
