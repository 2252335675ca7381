"""Start the echo app and `meshtrace sidecar` as real processes on ephemeral ports."""
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIDECAR_LISTENING = re.compile(r"meshtrace sidecar listening")


class Proc:
    """A child process whose output is collected; `wait_for` finds a line by regex."""

    def __init__(self, args, env=None):
        self.args = args
        self.lines = []
        self._queue = queue.Queue()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env or os.environ.copy())
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)

    def wait_for(self, pattern, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.args[0]} exited early ({self.proc.returncode}):\n" + self.log())
                continue
            m = re.search(pattern, line)
            if m:
                return m, line
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n" + self.log())

    def log(self):
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.args[0]} did not stop within {timeout}s after {sig}:\n" + self.log())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class EchoApp(Proc):
    def __init__(self):
        super().__init__([sys.executable, os.path.join(HERE, "echo_app.py"), "0"])
        m, _ = self.wait_for(r"echo app listening port=(\d+)")
        self.port = int(m.group(1))


class Sidecar(Proc):
    """`meshtrace sidecar` with every port 0 unless given; `ports` holds the bound ones."""

    KEYS = ("inbound", "outbound", "gateway", "metrics", "admin")

    def __init__(self, binary, *args, env=None, launcher=()):
        # The sidecar-only binary takes the flags directly; the all-in-one one under `sidecar`.
        # `launcher` runs it through another command (e.g. `setpriv` to drop root).
        command = [binary] if os.path.basename(binary) == "meshtrace-sidecar" else [binary, "sidecar"]
        command = list(launcher) + command
        base = command + ["--inbound-port", "0", "--outbound-port", "0", "--metrics-port", "0", "--admin-port", "0"]
        super().__init__(base + list(args), env=env)
        _, line = self.wait_for(SIDECAR_LISTENING.pattern)
        self.line = line
        self.ports = {}
        for key in self.KEYS:
            m = re.search(key + r"=(?:[^\s]*):(\d+)", line)
            if m:
                self.ports[key] = int(m.group(1))

    def url(self, key, path=""):
        return f"http://127.0.0.1:{self.ports[key]}{path}"
