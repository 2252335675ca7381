"""`meshtrace analyze` (the propagation doctor) and sidecar parent inference, on the real demo.

Healthy demo: no problems, exit 0. Broken demo (backend forwards no headers): exit 1, backend
named, the headers to forward printed. With --infer-parent, sequential traffic gives whole
traces with the inferred link marked; concurrent traffic never gives a wrong link, checked
against the broken backend's own record of which request caused each call (`demo.caused_by`).
"""
import concurrent.futures
import json
import os
import subprocess
import time

import pytest
import requests

from conftest import BINARY, ROOT, wait_until
from test_mesh import EPHEMERAL, Mesh, meshes  # noqa: F401  (fixture)


def analyze(mesh, *args, timeout=60):
    return subprocess.run([BINARY, "analyze", "--query", mesh.ui, *args], capture_output=True, text=True, timeout=timeout)


def report(mesh, *args):
    out = analyze(mesh, "--format", "json", *args)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def tag(span, key):
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


def kind(span):
    return tag(span, "span.kind") or "internal"


def service(trace, span):
    return trace["processes"][span["processID"]]["serviceName"]


def parent_id(span):
    return span["references"][0]["spanID"] if span["references"] else None


def send(mesh, n, concurrency):
    """n requests through the gateway from `concurrency` parallel clients; all must succeed."""
    def one(i):
        with requests.Session() as s:
            return s.get(f"{mesh.gateway}/api/reports/{i % 20 + 1}", timeout=30).status_code
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        statuses = list(pool.map(one, range(n)))
    assert statuses == [200] * n, statuses


def backend_calls(mesh, start_us, want):
    """Every backend CLIENT span (backend → database) started since start_us, with its trace."""
    def fetch():
        end_us = int(time.time() * 1e6) + 1_000_000
        traces = mesh.traces("backend", start_us, end_us, limit=5000)
        calls = [(t, s) for t in traces for s in t["spans"]
                 if service(t, s) == "backend" and kind(s) == "client" and s["startTime"] >= start_us]
        return calls if len(calls) >= want else None
    return wait_until(fetch, timeout=40, interval=0.5, message=f"{want} backend calls stored")


def check_links(calls):
    """(linked, ambiguous, wrong): each backend call is either linked to the backend SERVER span
    of the request that really caused it, or left a root; a link to any other span is wrong."""
    linked = ambiguous = 0
    wrong = []
    for trace, span in calls:
        cause = tag(span, "demo.caused_by")
        assert cause, f"the broken backend names its cause on every call: {span}"
        if tag(span, "meshtrace.parent_inferred") in (True, "true"):
            by_id = {s["spanID"]: s for s in trace["spans"]}
            parent = by_id.get(parent_id(span))
            if (parent is None or service(trace, parent) != "backend" or kind(parent) != "server"
                    or tag(parent, "guid:x-request-id") != cause):
                wrong.append((trace["traceID"], cause, parent and tag(parent, "guid:x-request-id")))
            else:
                linked += 1
        else:
            assert parent_id(span) is None, "a call that was not inferred stays a root, as the app sent it"
            ambiguous += 1
    return linked, ambiguous, wrong


def test_healthy_demo_has_no_problems(tmp_path, meshes):
    mesh = Mesh(["demo", *EPHEMERAL, "--requests", "20", "--rate", "20"], tmp_path)
    meshes.append(mesh)
    mesh.wait_for(r"traffic done: 200: 20")
    # Traces settle a few seconds after they end; wait until the doctor has seen them.
    wait_until(lambda: report(mesh)[1]["traces"] >= 18, timeout=40, interval=1, message="20 analysed traces")
    out = analyze(mesh)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no problems found" in out.stdout


def test_broken_demo_names_backend_and_the_headers(tmp_path, meshes):
    mesh = Mesh(["demo", "--broken", *EPHEMERAL, "--requests", "20", "--rate", "20"], tmp_path)
    meshes.append(mesh)
    mesh.wait_for(r"traffic done: 200: 20")
    code, body = wait_until(lambda: (lambda r: r if r[1]["findings"] and r[1]["traces"] >= 36 else None)(report(mesh)),
                            timeout=40, interval=1, message="findings over the broken demo's traces")
    assert code == 1
    assert [(f["kind"], f["service"]) for f in body["findings"]] == [("context-dropped", "backend")], body
    finding = body["findings"][0]
    assert finding["evidence"]["count"] >= 18 and len(finding["evidence"]["traceIDs"]) >= 1

    out = analyze(mesh)
    print(out.stdout)
    assert out.returncode == 1
    assert "context dropped — backend" in out.stdout
    for header in ["traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-request-id"]:
        assert header in out.stdout, header
    assert "fix: In backend, copy" in out.stdout
    # The example trace ids are real: each is a trace that starts at backend's CLIENT span.
    tid = finding["evidence"]["traceIDs"][0]
    trace = requests.get(f"{mesh.ui}/api/traces/{tid}", timeout=10).json()["data"][0]
    roots = [s for s in trace["spans"] if not s["references"]]
    assert [(service(trace, s), kind(s)) for s in roots] == [("backend", "client")]
    # The causality bookkeeping is opt-in (--record-causality): no span of this run carries it.
    now_us = int(time.time() * 1e6) + 1_000_000
    for svc in ("backend", "database"):
        stored = mesh.traces(svc, 0, now_us, limit=500)
        assert stored and not [s for t in stored for s in t["spans"] if tag(s, "demo.caused_by") is not None], svc

    # The UI's Health page is served and reads the same endpoint.
    assert requests.get(f"{mesh.ui}/health", timeout=10).status_code == 200
    assert "/api/meshtrace/analysis" in requests.get(f"{mesh.ui}/static/health.js", timeout=10).text

    # Only about one service: frontend is fine.
    assert analyze(mesh, "--service", "frontend").returncode == 0
    # Usage and connection errors are status 2 with a message.
    bad = subprocess.run([BINARY, "analyze", "--query", "http://127.0.0.1:9", "--lookback", "5m"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cannot reach the collector" in bad.stderr
    assert analyze(mesh, "--format", "yaml").returncode == 2


def test_inferred_parents_make_sequential_traces_whole(tmp_path, meshes):
    mesh = Mesh(["demo", "--broken", "--infer-parent", "--record-causality", *EPHEMERAL, "--requests", "0"], tmp_path)
    meshes.append(mesh)
    start_us = int(time.time() * 1e6)
    send(mesh, 20, concurrency=1)
    calls = backend_calls(mesh, start_us, 20)
    linked, ambiguous, wrong = check_links(calls)
    assert wrong == [] and linked == 20 and ambiguous == 0
    for trace, span in calls:
        # Whole: gateway → frontend → backend → database in one trace with one root.
        def whole():
            t = requests.get(f"{mesh.ui}/api/traces/{trace['traceID']}", timeout=10).json()["data"][0]
            return t if len(t["spans"]) >= 8 else None
        t = wait_until(whole, timeout=20, interval=0.5, message="8 spans")
        by_id = {s["spanID"]: s for s in t["spans"]}
        roots = [s for s in t["spans"] if parent_id(s) is None]
        assert len(roots) == 1 and service(t, roots[0]) == "gateway"
        assert all(parent_id(s) is None or parent_id(s) in by_id for s in t["spans"])
        assert {(service(t, s), kind(s)) for s in t["spans"]} >= {("gateway", "server"), ("frontend", "server"), ("backend", "server"),
                                                                 ("backend", "client"), ("database", "server")}
        db, = [s for s in t["spans"] if service(t, s) == "database" and kind(s) == "server"]
        assert by_id[parent_id(db)]["spanID"] == span["spanID"]
    # Server-side critical path over a whole trace: contiguous sections from the gateway's root.
    tid = calls[0][0]["traceID"]
    cp = subprocess.run([BINARY, "analyze", "critical-path", tid, "--query", mesh.ui, "--format", "json"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    sections = json.loads(cp.stdout)["sections"]
    assert sections and all(a["endMicros"] <= b["startMicros"] for a, b in zip(sections, sections[1:]))
    assert any(sec["service"] == "database" for sec in sections)
    text = subprocess.run([BINARY, "analyze", "critical-path", tid, "--query", mesh.ui], capture_output=True, text=True, timeout=30)
    print(text.stdout)
    assert text.returncode == 0 and "critical path of trace" in text.stdout
    # The doctor is satisfied, and the sidecar counted what it did.
    wait_until(lambda: report(mesh)[1]["traces"] >= 18, timeout=40, interval=1, message="analysed traces")
    code, body = report(mesh)
    assert code == 0, body["findings"]
    dump = mesh.cli("proxy-config", "backend")
    assert dump.returncode == 0, dump.stderr
    inference = json.loads(dump.stdout)["parent_inference"]
    assert inference["enabled"] is True and inference["inferred"] >= 20 and inference["ambiguous"] == 0


def test_concurrent_traffic_never_links_a_wrong_parent(tmp_path, meshes):
    mesh = Mesh(["demo", "--broken", "--infer-parent", "--record-causality", *EPHEMERAL, "--requests", "0"], tmp_path)
    meshes.append(mesh)
    results = {}
    for concurrency, n in [(1, 40), (4, 80), (16, 160)]:
        start_us = int(time.time() * 1e6)
        send(mesh, n, concurrency)
        calls = backend_calls(mesh, start_us, n)
        linked, ambiguous, wrong = check_links(calls)
        assert wrong == [], f"wrong parent links at concurrency {concurrency}: {wrong[:5]}"
        assert linked + ambiguous == n
        results[concurrency] = {"requests": n, "linked": linked, "ambiguous": ambiguous, "linkedShare": round(linked / n, 3)}
        time.sleep(1.5)  # let this level's requests leave the sidecars before the next starts
    print("parent inference, linked vs ambiguous:", json.dumps(results))
    out_dir = os.path.join(ROOT, "artifacts")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "parent-inference-shares.json"), "w") as f:
        json.dump(results, f, indent=2)
    assert results[1]["linked"] == 40, "one request at a time is always linked"
    dump = json.loads(mesh.cli("proxy-config", "backend").stdout)["parent_inference"]
    assert dump["inferred"] == sum(r["linked"] for r in results.values())
    assert dump["ambiguous"] == sum(r["ambiguous"] for r in results.values())
