"""`capture: netns` in `meshtrace up` and `meshtrace demo --capture` (root only; skipped with the
reason otherwise): each service in a network namespace of its own, calling the others by name
with a plain client and no proxy settings; one trace across the mesh; every namespace gone on
exit, and after a `kill -9` once `meshtrace down` has run."""
import json
import os
import pathlib
import shutil
import socket
import tempfile
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import BINARY, wait_until
from capture import netns
from test_mesh import spans_by_service

pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))

EPHEMERAL = ["--query-port", "0", "--zipkin-port", "0", "--otlp-http-port", "0", "--collector-admin-port", "0",
             "--gateway-port", "0", "--control-port", "0"]
APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capture", "apps.py")


def host_nat():
    """The machine's own nat tables and links, which the tests must leave as they found them."""
    return netns.sh("iptables", "-t", "nat", "-S").stdout + netns.host_links()


def mesh_namespaces(mesh):
    return [n for n in netns.namespaces() if n.startswith(f"meshtrace-{mesh}-")]


class Run:
    """`meshtrace` (a copy the apps' user can run) with its output collected."""

    def __init__(self, args, tmp_path, binary):
        self.state_dir = str(tmp_path / "state")
        env = dict(netns.clean_env(), MESHTRACE_STATE_DIR=self.state_dir, NO_COLOR="1")
        self.proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=str(tmp_path))
        self.lines = []
        threading.Thread(target=lambda: [self.lines.append(line) for line in self.proc.stdout], daemon=True).start()

    def log(self):
        return "".join(self.lines)

    def wait_for(self, pattern, timeout=120):
        def find():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.log()}")
            return re.search(pattern, self.log())
        return wait_until(find, timeout=timeout, message=f"output matching {pattern!r}\n{self.log()[-3000:]}")

    def stop(self, sig=signal.SIGINT, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def clean_host():
    """The machine's nat table is the same after, and no namespace of ours is left."""
    netns.sweep_stale()
    before = host_nat()
    yield
    assert host_nat() == before, "the machine's own nat table changed"


def test_demo_capture_is_one_trace_with_no_proxy_settings(tmp_path, clean_host):
    binary = netns.proxy_binary(BINARY)
    run = Run(["demo", "--capture", *EPHEMERAL, "--requests", "10", "--rate", "10"], tmp_path, binary)
    try:
        ui = run.wait_for(r"UI:\s+(http://\S+)/").group(1)
        trace_id = run.wait_for(r"example trace: \S+/trace/([0-9a-f]+)").group(1)
        assert "traffic done: 200: 10" in run.log(), run.log()
        assert len(mesh_namespaces("demo")) == 4, netns.namespaces()  # the bridge's and three pods

        def complete():
            trace = requests.get(f"{ui}/api/traces/{trace_id}", timeout=10).json()["data"][0]
            return trace if len(trace["spans"]) >= 8 else None
        trace = wait_until(complete, timeout=45, message="8 spans in the example trace")
        parent = {s["spanID"]: (s["references"][0]["spanID"] if s["references"] else None) for s in trace["spans"]}
        kinds = spans_by_service(trace)
        gw_client, = kinds[("gateway", "client")]
        fe_server, = kinds[("frontend", "server")]
        fe_client, = kinds[("frontend", "client")]
        be_server, = kinds[("backend", "server")]
        be_client, = kinds[("backend", "client")]
        db_server, = kinds[("database", "server")]
        business, = [s for s in trace["spans"] if s["operationName"] == "compute-report"]
        assert parent[fe_server["spanID"]] == gw_client["spanID"]
        assert parent[fe_client["spanID"]] == fe_server["spanID"]
        assert parent[be_server["spanID"]] == fe_client["spanID"]
        assert parent[be_client["spanID"]] == be_server["spanID"]
        assert parent[db_server["spanID"]] == be_client["spanID"]
        # The backend's own span reached the collector from inside its namespace.
        assert parent[business["spanID"]] == be_server["spanID"]
        # frontend called http://backend:8080 itself: no proxy, no egress listener, a name.
        tags = {t["key"]: t["value"] for t in fe_client["tags"]}
        assert tags["upstream_cluster"] == "outbound|8080||backend", tags
        assert tags["http.url"].startswith("http://backend:8080/"), tags
        assert run.stop(signal.SIGINT) == 0, run.log()[-3000:]
    finally:
        run.stop(signal.SIGKILL) if run.proc.poll() is None else None
        subprocess.run([binary, "down", "--mesh", "demo"], capture_output=True, env=dict(os.environ, MESHTRACE_STATE_DIR=run.state_dir))
    assert mesh_namespaces("demo") == [], netns.namespaces()
    assert not [d for d in os.listdir("/etc/netns") if d.startswith("meshtrace-demo-")] if os.path.isdir("/etc/netns") else True


def test_up_capture_netns_and_down_after_a_kill(tmp_path, clean_host):
    binary = netns.proxy_binary(BINARY)
    apps = netns.proxy_binary(APPS)
    (tmp_path / "mesh.yaml").write_text(f"""
name: capt
capture: netns
collector: {{queryPort: 0, zipkinPort: 0, otlpPort: 0, adminPort: 0, dataDir: {tmp_path}/data}}
gateway: {{port: 0, routes: {{"/": frontend}}}}
services:
  - name: frontend
    command: /usr/bin/python3
    args: [{apps}, frontend]
    port: 8080
    upstreams: [backend]
    health: /
  - name: backend
    command: /usr/bin/python3
    args: [{apps}, backend]
    port: 8080
    health: /
""")
    run = Run(["up", "-f", "mesh.yaml", "--control-port", "0"], tmp_path, binary)
    try:
        gateway = run.wait_for(r"gateway:\s+(http://\S+)").group(1)
        ui = run.wait_for(r"UI:\s+(http://\S+)/").group(1)
        reply = requests.get(f"{gateway}/call", timeout=30).json()
        headers = reply["backend"]["headers"]
        m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]$", headers["traceparent"])
        assert m and headers["x-b3-traceid"] == m.group(1), headers
        assert not any("proxy" in k for k in headers), headers

        def complete():
            trace = requests.get(f"{ui}/api/traces/{m.group(1)}", timeout=10).json()["data"]
            return trace[0] if trace and len(trace[0]["spans"]) >= 5 else None
        trace = wait_until(complete, timeout=45, message="5 spans")
        kinds = spans_by_service(trace)
        assert set(kinds) == {("gateway", "server"), ("gateway", "client"), ("frontend", "server"), ("frontend", "client"),
                              ("backend", "server")}, kinds.keys()
        assert len(mesh_namespaces("capt")) == 3
        pids = [int(p) for ns in mesh_namespaces("capt") for p in netns.sh("ip", "netns", "pids", ns).stdout.split()]
        assert pids, "the apps run inside the namespaces"
        # A crash: nothing gets to clean up. `meshtrace down` does.
        run.proc.kill()
        run.proc.wait()
        assert mesh_namespaces("capt"), "left behind by the kill, for `down` to remove"
        down = subprocess.run([binary, "down", "--mesh", "capt"], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, MESHTRACE_STATE_DIR=run.state_dir))
        assert down.returncode == 0, down.stdout + down.stderr
        assert "removed network namespaces" in down.stdout, down.stdout
        assert mesh_namespaces("capt") == []
        wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), timeout=10, message="the apps are gone")
    finally:
        if run.proc.poll() is None:
            run.stop(signal.SIGKILL)
        subprocess.run([binary, "down", "--mesh", "capt"], capture_output=True, env=dict(os.environ, MESHTRACE_STATE_DIR=run.state_dir))
    assert mesh_namespaces("capt") == []


def test_capture_without_root_says_why_and_starts_nothing():
    binary = netns.proxy_binary(BINARY)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="mtcap-nr-"))  # pytest's own is closed to nobody
    os.chmod(tmp_path, 0o777)
    env = dict(netns.clean_env(), MESHTRACE_STATE_DIR=str(tmp_path), HOME=str(tmp_path))
    demo = subprocess.run([*as_nobody, binary, "demo", "--capture", *EPHEMERAL], capture_output=True, text=True, timeout=60, env=env)
    assert demo.returncode != 0
    assert "--capture needs root" in demo.stderr and "sudo meshtrace demo --capture" in demo.stderr, demo.stderr
    # Root is the first thing `up` checks: the query port is taken on purpose (held here), and
    # the answer is still "needs root", not the port. The other ports are 0, so a mesh or test
    # elsewhere on the machine cannot answer first (it did: "port 4317 is already in use").
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        (tmp_path / "mesh.yaml").write_text("name: nr\ncapture: netns\n"
                                            f"collector: {{queryPort: {taken.getsockname()[1]}, zipkinPort: 0, otlpPort: 0, otlpGrpcPort: 0, adminPort: 0}}\n"
                                            "services:\n  - name: a\n    command: /bin/true\n")
        os.chmod(tmp_path / "mesh.yaml", 0o644)
        up = subprocess.run([*as_nobody, binary, "up", "-f", str(tmp_path / "mesh.yaml"), "--control-port", "0"],
                            capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path))
    finally:
        taken.close()
    assert up.returncode != 0
    assert "capture: netns needs root" in up.stdout + up.stderr, up.stdout + up.stderr
    assert "already in use" not in up.stdout + up.stderr, up.stdout + up.stderr
    assert mesh_namespaces("nr") == []
    shutil.rmtree(tmp_path, ignore_errors=True)
