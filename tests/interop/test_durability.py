"""Spans acknowledged before a crash (kill -9) or a SIGTERM are all there after restart."""
import signal
import threading

import requests

from conftest import get_json, wait_until
from spans import new_rng, zipkin_span


def test_acknowledged_spans_survive_kill_9(start_collector, tmp_path):
    data = tmp_path / "data"
    c = start_collector(data)
    rng = new_rng(7)
    acked = []
    stop = threading.Event()
    errors = []

    def send():
        session = requests.Session()
        while not stop.is_set():
            batch = [zipkin_span(rng, service="durable") for _ in range(50)]
            try:
                r = session.post(c.url("zipkin", "/api/v2/spans"), json=batch, timeout=10)
            except requests.RequestException:
                return  # the process died mid-request: that batch was never acknowledged
            if r.status_code == 202:
                acked.extend(s["traceId"] for s in batch)
            elif r.status_code != 503:
                errors.append((r.status_code, r.text))

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: len(acked) >= 2000, timeout=60, message="2000 acknowledged spans")
    c.proc.send_signal(signal.SIGKILL)  # no chance to flush anything
    c.proc.wait()
    stop.set()
    sender.join(timeout=30)
    assert not errors, errors

    restarted = start_collector(data)
    for trace_id in acked:
        r = requests.get(restarted.url("zipkin", f"/api/v2/trace/{trace_id}"), timeout=10)
        assert r.status_code == 200, f"acknowledged trace {trace_id} lost after kill -9 ({len(acked)} acked)"


def test_sigterm_drains_and_closes_cleanly(start_collector, tmp_path):
    data = tmp_path / "data"
    c = start_collector(data)
    rng = new_rng(8)
    batch = [zipkin_span(rng, service="graceful") for _ in range(200)]
    r = requests.post(c.url("zipkin", "/api/v2/spans"), json=batch, timeout=10)
    assert r.status_code == 202
    assert c.stop(signal.SIGTERM) == 0, c.log()
    assert "store closed" in c.log()
    restarted = start_collector(data)
    assert "graceful" in get_json(restarted.url("query", "/api/services"))["data"]
    for span in batch:
        assert requests.get(restarted.url("zipkin", f"/api/v2/trace/{span['traceId']}"), timeout=10).status_code == 200


def test_memory_storage_is_not_persisted(start_collector, tmp_path):
    data = tmp_path / "mem"
    c = start_collector(data, ["--storage", "memory"])
    rng = new_rng(9)
    r = requests.post(c.url("zipkin", "/api/v2/spans"), json=[zipkin_span(rng, service="ephemeral")], timeout=10)
    assert r.status_code == 202
    assert get_json(c.url("query", "/api/services"))["data"] == ["ephemeral"]
    assert c.stop() == 0
    again = start_collector(data, ["--storage", "memory"])
    assert get_json(again.url("query", "/api/services"))["data"] == []
