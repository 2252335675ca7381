"""`meshtrace up` starting, failing and dying as a person meets it: taken ports are named with
their mesh.yaml key, a killed `up` takes its apps with it, health probes close politely,
and two meshes run side by side (issue 16, items 1-4)."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import BINARY, wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


# A tiny app in the standard library: Python's http.server, which prints a traceback for
# every connection reset under it. `sh -c` makes the server a grandchild of the mesh.
PY_SERVICE = """  - name: {name}
    command: sh
    args: [-c, "{python} -m http.server --bind 127.0.0.1 $PORT; exit $?"]
    health: /
"""


def write_mesh(path, name="m", services=("web",), collector_ports=None, gateway_port=None, extra=""):
    ports = collector_ports or {}
    text = f"name: {name}\nservices:\n"
    for s in services:
        text += PY_SERVICE.format(name=s, python=sys.executable)
    if gateway_port is not None:
        text += f"gateway:\n  port: {gateway_port}\n  routes:\n    /: {services[0]}\n"
    text += "collector:\n"
    for key in ("queryPort", "zipkinPort", "otlpPort", "adminPort"):
        text += f"  {key}: {ports.get(key, 0)}\n"
    text += f"  dataDir: {path.parent / ('data-' + name)}\n" + extra
    path.write_text(text)
    return path


class Up:
    """A running `meshtrace up`; its output collected for the assertions."""

    def __init__(self, mesh_file, state_dir, *extra):
        env = dict(os.environ, MESHTRACE_STATE_DIR=str(state_dir), NO_COLOR="1")
        self.env = env
        self.proc = subprocess.Popen([BINARY, "up", "-f", str(mesh_file), "--control-port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def log(self):
        return "".join(self.lines)

    def wait_ready(self, timeout=90):
        def ready():
            assert self.proc.poll() is None, f"up exited with {self.proc.returncode}:\n{self.log()}"
            return "control:" in self.log()
        wait_until(ready, timeout=timeout, message=f"the mesh to come up\n{self.log()}")
        return self

    def cli(self, *args):
        return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30, env=self.env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def ups():
    started = []
    yield started
    for up in started:
        up.stop()


def status(up, *args):
    out = up.cli("status", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- item 1: a taken port ------------------------------------------------------------------

@pytest.mark.parametrize("key", ["collector.adminPort", "collector.queryPort", "gateway.port", "--control-port"])
def test_taken_port_fails_at_once_naming_port_and_key(tmp_path, key):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        collector = {key.split(".")[1]: port} if key.startswith("collector.") else {}
        mesh = write_mesh(tmp_path / "mesh.yaml", collector_ports=collector,
                          gateway_port=port if key == "gateway.port" else 0)
        control = ["--control-port", str(port)] if key == "--control-port" else ["--control-port", "0"]
        started = time.monotonic()
        out = subprocess.run([BINARY, "up", "-f", str(mesh), *control], capture_output=True, text=True, timeout=10,
                             env=dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state")))
    assert out.returncode != 0
    assert time.monotonic() - started < 10
    assert f"port {port} is already in use" in out.stderr and key in out.stderr, out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_second_up_of_the_same_file_fails_and_leaves_the_first_running(tmp_path, ups):
    ports = {k: free_port() for k in ("queryPort", "zipkinPort", "otlpPort", "adminPort")}
    mesh = write_mesh(tmp_path / "mesh.yaml", collector_ports=ports, gateway_port=free_port())
    first = Up(mesh, tmp_path / "state").wait_ready()
    ups.append(first)
    started = time.monotonic()
    second = subprocess.run([BINARY, "up", "-f", str(mesh), "--control-port", "0"], capture_output=True, text=True,
                            timeout=10, env=first.env)
    assert second.returncode != 0 and time.monotonic() - started < 10
    assert f"port {ports['queryPort']} is already in use" in second.stderr and "collector.queryPort" in second.stderr, second.stderr
    # The failed second run did not touch the first's state: commands still find it.
    assert status(first)["mesh"] == "m"
    assert first.proc.poll() is None


def test_missing_command_fails_at_once_naming_the_key(tmp_path):
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(f"services:\n  - name: web\n    command: no-such-program-xyz\ncollector:\n  queryPort: 0\n  zipkinPort: 0\n"
                    f"  otlpPort: 0\n  adminPort: 0\n  dataDir: {tmp_path / 'data'}\n")
    out = subprocess.run([BINARY, "up", "-f", str(mesh), "--control-port", "0"], capture_output=True, text=True, timeout=10,
                         env=dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state")))
    assert out.returncode != 0
    assert "services[0].command" in out.stderr and "no-such-program-xyz" in out.stderr, out.stderr


def test_unusable_data_dir_fails_with_a_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(f"services:\n  - name: web\n    command: true\ncollector:\n  queryPort: 0\n  zipkinPort: 0\n"
                    f"  otlpPort: 0\n  adminPort: 0\n  dataDir: {blocker / 'data'}\n")
    out = subprocess.run([BINARY, "up", "-f", str(mesh), "--control-port", "0"], capture_output=True, text=True, timeout=10,
                         env=dict(os.environ, MESHTRACE_STATE_DIR=str(tmp_path / "state")))
    assert out.returncode != 0
    assert "collector did not start" in out.stderr and str(blocker / "data") in out.stderr, out.stderr


# --- item 2: apps die with a killed `up`, and hold none of its sockets ------------------------

def socket_fds(pid):
    fds = os.listdir(f"/proc/{pid}/fd")
    return [fd for fd in fds if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")]


def test_kill_9_of_up_takes_the_apps_with_it(tmp_path, ups):
    mesh = write_mesh(tmp_path / "mesh.yaml", services=("web", "api"), gateway_port=0)
    up = Up(mesh, tmp_path / "state").wait_ready()
    ups.append(up)
    services = status(up)["services"]
    pids = {s["name"]: s["pid"] for s in services if s.get("pid")}
    app_ports = [s["appPort"] for s in services if s["name"] in ("web", "api")]
    assert set(pids) == {"web", "api"}
    for pid in pids.values():
        # Only the app's own listener: none of the mesh's dozens of sockets leaked into it.
        assert len(socket_fds(pid)) <= 1, f"{pid} holds {len(socket_fds(pid))} sockets"
    mesh_ports = [int(s[k].rsplit(":", 1)[1]) for s in services for k in ("inbound", "outbound") if s.get(k)]

    up.proc.kill()
    up.proc.wait()
    killed = time.monotonic()
    try:
        wait_until(lambda: not [p for p in pids.values() if alive(p)], timeout=5,
                   message=f"service processes to die after kill -9 of up\n{up.log()}")
        assert time.monotonic() - killed <= 5
        wait_until(lambda: all(port_is_free(p) for p in app_ports + mesh_ports), timeout=5, message="ports freed")
    finally:  # when the mesh failed to, the test stops what it left: only groups still running
        for pid in pids.values():  # its own shell (pids are reused fast on a busy machine)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    ours = b"http.server" in f.read()
                if ours and alive(pid):
                    os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, FileNotFoundError, PermissionError):
                pass

    # The next `up` reports what the killed one left behind (its state file).
    again = Up(mesh, tmp_path / "state").wait_ready()
    ups.append(again)
    assert "did not stop cleanly" in again.log() and "'m'" in again.log(), again.log()


# --- item 3: health probes close politely ---------------------------------------------------

def test_health_probes_cause_no_tracebacks_in_a_python_app(tmp_path, ups):
    mesh = write_mesh(tmp_path / "mesh.yaml", services=("web",))
    up = Up(mesh, tmp_path / "state").wait_ready()
    ups.append(up)
    # http.server logs each request it answers; six probes take about six seconds.
    wait_until(lambda: up.log().count('"GET / HTTP/1.1" 200') >= 6, timeout=30, message=f"six health probes\n{up.log()}")
    assert "Traceback" not in up.log() and "ConnectionResetError" not in up.log(), up.log()


# --- item 4: two meshes side by side ----------------------------------------------------------

def test_two_meshes_side_by_side_each_reachable_by_name(tmp_path, ups):
    alpha = Up(write_mesh(tmp_path / "alpha.yaml", name="alpha"), tmp_path / "state").wait_ready()
    ups.append(alpha)
    beta = Up(write_mesh(tmp_path / "beta.yaml", name="beta"), tmp_path / "state").wait_ready()
    ups.append(beta)
    assert status(alpha, "--mesh", "alpha")["mesh"] == "alpha"
    assert status(beta, "--mesh", "beta")["mesh"] == "beta"
    ambiguous = alpha.cli("status")
    assert ambiguous.returncode != 0 and "--mesh" in ambiguous.stderr and "alpha" in ambiguous.stderr and "beta" in ambiguous.stderr
    unknown = alpha.cli("status", "--mesh", "gamma")
    assert unknown.returncode != 0 and "no running mesh named 'gamma'" in unknown.stderr
    # Stopping one leaves the other's state file: a bare `status` now finds the one left.
    alpha.stop()
    assert alpha.proc.returncode == 0, alpha.log()
    assert status(beta)["mesh"] == "beta"
