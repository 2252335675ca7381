"""The shipped examples/mesh.yaml, run unchanged as a newcomer runs it: only HOME points at a
temporary directory (no data dir, no state dir, no ports changed). It uses the file's fixed
ports, so it can collide with another run on the same machine: on "port in use", check
`ss -ltnp` and retry."""
import os
import signal
import subprocess
import threading
import time

import requests

from conftest import BINARY, ROOT, wait_until


def test_shipped_example_comes_up_serves_a_trace_and_stops(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MESHTRACE_", "XDG_"))}
    env.update(HOME=str(home), NO_COLOR="1")
    proc = subprocess.Popen([BINARY, "up", "-f", "examples/mesh.yaml"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    log = lambda: "".join(lines)
    try:
        def ready():
            assert proc.poll() is None, f"up exited with {proc.returncode}:\n{log()}"
            return "control:" in log()
        wait_until(ready, timeout=90, message=f"the mesh to come up\n{log()}")
        assert "UI:       http://127.0.0.1:16686/" in log(), log()
        assert "gateway:  http://127.0.0.1:8080" in log(), log()

        start_us = int(time.time() * 1e6)
        r = requests.get("http://127.0.0.1:8080/api/reports/7", timeout=30)
        assert r.status_code == 200, r.text

        def trace():
            q = requests.get("http://127.0.0.1:16686/api/traces",
                             params={"service": "gateway", "start": start_us, "limit": 5}, timeout=10)
            data = q.json()["data"]
            services = {p["serviceName"] for t in data for p in t["processes"].values()}
            return services if {"gateway", "frontend", "backend", "database"} <= services else None
        wait_until(trace, timeout=30, message="a trace across the example mesh")

        # Traces went to the default data dir under HOME, and the state file beside it.
        assert (home / ".local/share/meshtrace").is_dir()
        assert list((home / ".local/state/meshtrace").rglob("*.json")), "no state file under HOME"

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log()[-3000:]
        assert not list((home / ".local/state/meshtrace").rglob("*.json")), "the state file outlived the mesh"
    finally:
        if proc.poll() is None:  # a failed assertion: stop the services too, not only `up`
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
