"""Fixtures that run the real `meshtrace` binary on ephemeral ports with its own data dir."""
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("MESHTRACE_BIN", os.path.join(ROOT, ".build", "debug", "meshtrace"))
LISTENING = re.compile(r"meshtrace collector listening")
PORT_KEYS = {"zipkin": "zipkin", "otlp_http": "otlp", "otlp_grpc": "otlp_grpc", "query": "query", "admin": "admin"}
# SkyWalking's addresses are printed as its agents take them: host:port, no scheme.
SKYWALKING_PORT_KEYS = {"skywalking_grpc": "skywalking_grpc", "skywalking_http": "skywalking_http"}


_held_sockets = []


def refused_port():
    """A port where connections are refused for the rest of the run: bound, never listening, and
    held open, so neither another listener nor a connect's own source port can take it (a port
    merely found free and released can be both, and once was in CI)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held_sockets.append(s)
    return s.getsockname()[1]


def wait_until(predicate, timeout=20.0, interval=0.05, message="condition"):
    """Polls `predicate` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")


class Collector:
    def __init__(self, data_dir, extra_args=()):
        self.data_dir = str(data_dir)
        self.extra_args = list(extra_args)
        self.proc = None
        self.lines = []
        self.ports = {}

    def start(self, timeout=30.0):
        args = [BINARY, "collector", "--zipkin-port", "0", "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--query-port", "0",
                "--admin-port", "0", "--skywalking-port", "0", "--skywalking-http-port", "0", "--data-dir", self.data_dir,
                *self.extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()

        def pump(stream):
            for line in stream:
                self.lines.append(line)
                lines.put(line)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError("collector exited early:\n" + "".join(self.lines))
                continue
            if LISTENING.search(line):
                for key, name in PORT_KEYS.items():
                    m = re.search(key + r"=https?://[^:\s]+:(\d+)", line)
                    if key == "otlp_grpc" and re.search(r"otlp_grpc=off", line):
                        continue  # --otlp-grpc-port -1
                    assert m, f"no {key} address in {line!r}"
                    self.ports[name] = int(m.group(1))
                for key, name in SKYWALKING_PORT_KEYS.items():
                    m = re.search(key + r"=[^:\s]+:(\d+)", line)
                    if m:  # absent: turned off with -1
                        self.ports[name] = int(m.group(1))
                assert "data_dir=" in line, line
                return self
        raise AssertionError("collector did not report listening addresses:\n" + "".join(self.lines))

    def url(self, name, path):
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("collector did not stop within %ss after %s" % (timeout, sig))

    def log(self):
        return "".join(self.lines)


@pytest.fixture
def start_collector(tmp_path):
    started = []

    def start(data_dir=None, extra_args=()):
        c = Collector(data_dir or tmp_path / "data", extra_args).start()
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc and c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


@pytest.fixture
def procs():
    """Processes a test starts (anything with `kill()`), killed in reverse order after it, pass or fail."""
    started = []

    def track(p):
        started.append(p)
        return p

    yield track
    for p in reversed(started):
        p.kill()


@pytest.fixture
def collector(start_collector):
    return start_collector()


def get_json(url, **params):
    r = requests.get(url, params=params, timeout=10)
    assert r.status_code == 200, f"{url} -> {r.status_code}: {r.text}"
    return r.json()


def zipkin_trace(collector, trace_id, count):
    url = collector.url("zipkin", f"/api/v2/trace/{trace_id}")

    def fetch():
        r = requests.get(url, timeout=5)
        return r.json() if r.status_code == 200 and len(r.json()) >= count else None

    return wait_until(fetch, timeout=20, message=f"{count} spans of trace {trace_id}")
