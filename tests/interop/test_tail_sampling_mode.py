"""`meshtrace telemetry set --tail …` switches a running demo mesh to tail sampling (the
collector keeps errors and drops the rest, with --keep-percent 0), and `--head` switches it back,
with requests through the gateway carrying trace ids chosen here."""
import random

import requests

from conftest import wait_until
from tailsampling import metric_sum, metrics_text
from test_mesh import EPHEMERAL, Mesh


def request(mesh, report):
    trace_id = format(random.getrandbits(128) | 1, "032x")
    headers = {"traceparent": f"00-{trace_id}-{random.getrandbits(64) | 1:016x}-01"}
    status = requests.get(f"{mesh.gateway}/api/reports/{report}", headers=headers, timeout=30).status_code
    return trace_id, status


def stored(mesh, trace_id):
    r = requests.get(f"{mesh.ui}/api/traces/{trace_id}", timeout=10)
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def test_telemetry_set_switches_a_running_mesh_to_tail_and_back(tmp_path):
    mesh = Mesh(["demo", "--requests", "0", *EPHEMERAL], tmp_path)
    try:
        targets = requests.get(mesh.control + "/prometheus/targets", timeout=10).json()
        admin = "http://" + next(g["targets"][0] for g in targets if g["labels"]["service"] == "meshtrace-collector")

        out = mesh.cli("telemetry", "set", "--tail", "--keep-percent", "0", "--slower-than", "10s", "--decision-wait", "2s")
        assert out.returncode == 0, out.stderr
        assert mesh.status()["telemetry"]["mode"] == "tail"

        failing, status = request(mesh, "err-1")
        assert status >= 500  # the database's 500, as each hop passes it back
        fine, status = request(mesh, "7")
        assert status == 200
        wait_until(lambda: stored(mesh, failing), timeout=30, message="the failing trace kept")
        wait_until(lambda: metric_sum(metrics_text(admin), "meshtrace_tail_sampling_decisions_total") >= 2
                   and metric_sum(metrics_text(admin), "meshtrace_tail_sampling_traces_buffered") == 0,
                   timeout=30, message="both traces decided")
        assert not stored(mesh, fine), "a fast, successful trace was kept at --keep-percent 0"

        out = mesh.cli("telemetry", "set", "--head", "--sampling", "100")
        assert out.returncode == 0, out.stderr
        assert mesh.status()["telemetry"]["mode"] == "head"
        again, status = request(mesh, "7")
        assert status == 200
        wait_until(lambda: stored(mesh, again), timeout=30, message="a trace stored with head sampling again")

        bad = mesh.cli("telemetry", "set", "--tail", "--keep-percent", "150")
        assert bad.returncode != 0 and "keepPercent" in bad.stderr + bad.stdout, bad.stderr + bad.stdout
        assert mesh.status()["telemetry"]["mode"] == "head"
        assert mesh.stop() == 0, mesh.log()[-3000:]
    finally:
        mesh.kill()
