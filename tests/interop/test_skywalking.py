"""SkyWalking interop: the real SkyWalking Python agent (apache-skywalking 1.2.0 from PyPI)
instruments an http.server app behind meshtrace sidecars with `sw8` in their propagation, and
reports its segments to the collector over HTTP (12800's API) and gRPC (11800's). The agent's
entry and exit spans and the sidecars' spans must form one trace with the right parents, seen
through the Jaeger API and in the UI. What the agent sent is captured in the test and checked
field by field against what was stored; malformed segments get a 400 naming the field while
the valid ones are kept. A trace entering with `sw8` only, through an app that forwards `sw8`
only, stays one trace.

    client → frontend inbound sidecar → [agent app: entry span, exit span] → frontend outbound
    sidecar → backend inbound sidecar → echo app
"""
import copy
import json
import os
import subprocess
import sys

import grpc
import pytest
import requests

from conftest import BINARY, ROOT, get_json, wait_until
from sidecar.procs import EchoApp, Proc, Sidecar
from sw_interop import ids

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT_APP = os.path.join(HERE, "sw_interop", "agent_app.py")
FORMATS = "w3c,b3multi,sw8"
ARTIFACTS = os.path.join(ROOT, "artifacts", "ui")
# SkyWalking's names for the component ids the Python agent uses here (component-libraries.yml).
COMPONENTS = {7000: "Python", 7001: "Flask", 7002: "Requests", 7006: "Urllib3"}
KINDS = {("Entry", False): "server", ("Exit", False): "client", ("Local", False): "internal",
         ("Entry", True): "consumer", ("Exit", True): "producer", ("Local", True): "internal"}


class AgentApp(Proc):
    def __init__(self, env):
        full = os.environ.copy()
        full.update(env)
        super().__init__([sys.executable, AGENT_APP], env=full)
        m, _ = self.wait_for(r"agent app listening port=(\d+)")
        self.port = int(m.group(1))


def jaeger_traces(collector, service):
    return get_json(collector.url("query", "/api/traces"), service=service, lookback="1h", limit=50)["data"]


def tags(span):
    return {t["key"]: t["value"] for t in span["tags"]}


def service_of(trace, span):
    return trace["processes"][span["processID"]]["serviceName"]


def parent_of(span):
    refs = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


def start_mesh(procs, collector, agent_env, frontend_formats=FORMATS):
    """backend sidecar + echo app; frontend outbound sidecar, the app, frontend inbound sidecar."""
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans"
    echo = procs(EchoApp())
    backend = procs(Sidecar(BINARY, "--service", "backend", "--app-port", str(echo.port), "--outbound-port", "-1",
                            "--collector", zipkin, "--propagation", FORMATS))
    out = procs(Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1", "--collector", zipkin, "--propagation", frontend_formats,
                        "--upstream", f"backend=127.0.0.1:{backend.ports['inbound']}"))
    env = {"DOWNSTREAM": "http://backend", "HTTP_PROXY": out.url("outbound"), "http_proxy": out.url("outbound"), "NO_PROXY": "127.0.0.1",
           "no_proxy": "127.0.0.1", **agent_env}
    app = procs(AgentApp(env))
    inbound = procs(Sidecar(BINARY, "--service", "frontend", "--app-port", str(app.port), "--outbound-port", "-1",
                            "--collector", zipkin, "--propagation", frontend_formats))
    return inbound, app


def captured_segments(path):
    """What the agent sent, as dicts in the HTTP reporter's JSON shape (proto decoded with the
    agent's own generated classes)."""
    from google.protobuf.json_format import MessageToDict
    from skywalking.protocol.language_agent.Tracing_pb2 import SegmentObject

    out = []
    if not os.path.exists(path):  # the agent has not reported yet
        return out
    for line in open(path):
        item = json.loads(line)
        if item["kind"] == "json":
            out.append(item["payload"])
        else:
            segment = SegmentObject()
            segment.ParseFromString(bytes.fromhex(item["payload"]))
            out.append(MessageToDict(segment, always_print_fields_with_no_presence=True))
    return out


def check_segment_stored(segment, trace):
    """Every span of a captured segment is in the Jaeger trace, mapped as the README says."""
    by_id = {s["spanID"]: s for s in trace["spans"]}
    seg_id = segment["traceSegmentId"]
    for sw in segment["spans"]:
        span_index, parent_index = int(sw.get("spanId", 0)), int(sw.get("parentSpanId", 0))
        sid = ids.span_id(seg_id, span_index)
        assert sid in by_id, f"span {span_index} of segment {seg_id} ({sid}) not stored; have {sorted(by_id)}"
        j = by_id[sid]
        t = tags(j)
        assert service_of(trace, j) == segment["service"]
        assert j["operationName"] == sw["operationName"]
        start, end = int(sw["startTime"]), int(sw["endTime"])
        assert j["startTime"] == start * 1000 and j["duration"] == (end - start) * 1000
        layer = sw.get("spanLayer", "Unknown")
        assert t["span.kind"] == KINDS[(sw.get("spanType", "Entry"), layer == "MQ")]
        assert t["component"] == COMPONENTS.get(int(sw.get("componentId", 0)), str(sw.get("componentId", 0)))
        assert t["sw8.segment_id"] == seg_id and t["sw8.span_layer"] == layer
        if sw.get("peer"):
            assert t["peer.address"] == sw["peer"]
        for tag in sw.get("tags", []):
            assert t[tag["key"]] == tag["value"], (tag, t)
        assert (t.get("error") is True) == bool(sw.get("isError")), t
        assert len(j["logs"]) == len(sw.get("logs", []))
        for log, jlog in zip(sw.get("logs", []), j["logs"]):
            assert jlog["timestamp"] == int(log["time"]) * 1000
            fields = {f["key"]: f["value"] for f in jlog["fields"]}
            data = {d["key"]: d["value"] for d in log["data"]}
            assert fields["event"] == data.get("event", "log")
            assert all(fields[k] == v for k, v in data.items() if k != "event"), (fields, data)
        if parent_index >= 0:
            want_parent = ids.span_id(seg_id, parent_index)
        else:
            ref = sw["refs"][0]
            want_parent = ids.span_id(ref["parentTraceSegmentId"], int(ref.get("parentSpanId", 0)))
        assert parent_of(j) == want_parent, (sw, j["references"])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_python_agent_spans_and_sidecar_spans_form_one_trace(protocol, procs, start_collector, tmp_path):
    collector = start_collector(extra_args=["--storage", "memory"])
    port = collector.ports["skywalking_http" if protocol == "http" else "skywalking_grpc"]
    capture = tmp_path / "segments.jsonl"
    inbound, app = start_mesh(procs, collector, {
        "SW_AGENT_PROTOCOL": protocol, "SW_AGENT_NAME": "frontend", "SW_AGENT_COLLECTOR_BACKEND_SERVICES": f"127.0.0.1:{port}",
        "CAPTURE_FILE": str(capture)})

    ok = requests.get(inbound.url("inbound", "/call/orders/42"), timeout=20)
    assert ok.status_code == 200, ok.text
    backend_saw = {k.lower(): v for k, v in json.loads(ok.text)["headers"]}
    failed = requests.get(inbound.url("inbound", "/call/status/500"), timeout=20)
    assert failed.status_code == 500

    def whole_traces():
        traces = [t for t in jaeger_traces(collector, "frontend") if len(t["spans"]) == 5]
        return traces if len(traces) == 2 else None
    traces = wait_until(whole_traces, timeout=60, message="two 5-span traces (agent segments + sidecar spans)")

    for trace in traces:
        spans = trace["spans"]
        assert len({s["traceID"] for s in spans}) == 1
        sidecar = [s for s in spans if "meshtrace.propagation.extracted" in tags(s)]
        agent = [s for s in spans if tags(s).get("component") == "Python"]
        assert len(sidecar) == 3 and len(agent) == 2, [(service_of(trace, s), s["operationName"], tags(s)) for s in spans]
        inbound_span = next(s for s in sidecar if tags(s)["span.kind"] == "server" and service_of(trace, s) == "frontend")
        outbound_span = next(s for s in sidecar if tags(s)["span.kind"] == "client")
        backend_span = next(s for s in sidecar if service_of(trace, s) == "backend")
        entry = next(s for s in agent if tags(s)["span.kind"] == "server")
        exit_ = next(s for s in agent if tags(s)["span.kind"] == "client")
        # One chain: sidecar SERVER → agent entry → agent exit → sidecar CLIENT → backend SERVER.
        assert parent_of(inbound_span) is None
        assert parent_of(entry) == inbound_span["spanID"]
        assert parent_of(exit_) == entry["spanID"]
        assert parent_of(outbound_span) == exit_["spanID"]
        assert parent_of(backend_span) == outbound_span["spanID"]
        # The app forwarded only what its agent wrote: sw8.
        assert tags(outbound_span)["meshtrace.propagation.extracted"] == "sw8"
        assert tags(inbound_span)["meshtrace.propagation.injected"] == FORMATS
        assert tags(entry)["sw8.parent.service"] == "frontend"
        assert tags(exit_)["peer.address"] == "backend"
        assert "sw8.trace_id" not in tags(entry)  # ours, written as hex: no hashing

    # The failed call: the agent marked both its spans as errors and logged on the exit span.
    bad = next(t for t in traces if any(tags(s).get("http.status_code") in ("500", 500) for s in t["spans"]))
    bad_agent = [s for s in bad["spans"] if tags(s).get("component") == "Python"]
    assert all(tags(s).get("error") is True for s in bad_agent), [tags(s) for s in bad_agent]

    # The backend's app got sw8 naming the backend sidecar's span, in the same trace.
    got = ids.parse_sw8(backend_saw["sw8"])
    good = next(t for t in traces if t is not bad)
    assert got["trace"] == good["traceID"] and got["service"] == "backend" and got["index"] == 0
    backend_span = next(s for s in good["spans"] if service_of(good, s) == "backend")
    assert got["segment"] == backend_span["spanID"] and got["endpoint"] == "/orders/42"

    # Real agent output, captured as sent, against what the collector stored.
    segments = wait_until(lambda: len(captured_segments(capture)) >= 2 and captured_segments(capture), message="captured segments")
    assert len(segments) == 2
    for segment in segments:
        trace = next(t for t in traces if t["traceID"] == segment["traceId"])
        check_segment_stored(segment, trace)

    # The agent's management calls were answered (it went on reporting) and noted once.
    wait_until(lambda: "SkyWalking agent reporting" in collector.log(), message="agent instance noted")
    assert collector.log().count("SkyWalking agent reporting") == 1
    metrics = requests.get(collector.url("admin", "/metrics"), timeout=10).text
    assert f'protocol="skywalking_{"json" if protocol == "http" else "grpc"}"' in metrics

    if protocol == "http":
        shot_trace(collector, good["traceID"], 5, "skywalking-agent-trace.png")


def shot_trace(collector, trace_id, count, name):
    """The trace in the web UI (headless Chromium): every span listed, under its service.
    The screenshot goes to artifacts/ui/."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    os.makedirs(ARTIFACTS, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,700"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(f"http://127.0.0.1:{collector.ports['query']}/trace/{trace_id}")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.documentElement.dataset.traceRendered") == trace_id)
        rows = driver.find_elements(By.CSS_SELECTOR, "#waterfall .row")
        assert len(rows) == count
        depths = [(r.get_attribute("data-service"), r.get_attribute("data-depth")) for r in rows]
        assert depths == [("frontend", "0"), ("frontend", "1"), ("frontend", "2"), ("frontend", "3"), ("backend", "4")], depths
        driver.save_screenshot(os.path.join(ARTIFACTS, name))
    finally:
        driver.quit()


def test_malformed_segments_are_named_and_valid_ones_kept(procs, start_collector, tmp_path):
    """Real segments from the agent (captured), then broken copies beside valid ones."""
    collector = start_collector(extra_args=["--storage", "memory"])
    capture = tmp_path / "segments.jsonl"
    inbound, _ = start_mesh(procs, collector, {
        "SW_AGENT_PROTOCOL": "http", "SW_AGENT_NAME": "frontend",
        "SW_AGENT_COLLECTOR_BACKEND_SERVICES": f"127.0.0.1:{collector.ports['skywalking_http']}", "CAPTURE_FILE": str(capture)})
    assert requests.get(inbound.url("inbound", "/call/x"), timeout=20).status_code == 200
    [real] = wait_until(lambda: captured_segments(capture), timeout=60, message="a captured segment")
    http = f"http://127.0.0.1:{collector.ports['skywalking_http']}"

    def renamed(n):
        s = copy.deepcopy(real)
        s["traceId"] = f"replayed.{n}.trace"
        s["traceSegmentId"] = f"replayed.{n}.segment"
        for span in s["spans"]:  # the references stay in the segment's (renamed) trace
            for ref in span.get("refs", []):
                ref["traceId"] = s["traceId"]
        return s
    good, bad_type, bad_ids, bad_end = renamed(1), renamed(2), renamed(3), renamed(4)
    bad_type["spans"][0]["spanType"] = "Sideways"
    bad_ids["traceId"] = ""
    bad_end["spans"][1]["endTime"] = bad_end["spans"][1]["startTime"] - 5
    r = requests.post(http + "/v3/segments", json=[good, bad_type, bad_ids, bad_end], timeout=10)
    assert r.status_code == 400, r.text
    assert "segments[1].spans[0].spanType" in r.text and '"Sideways"' in r.text
    assert "segments[2].traceId" in r.text and "segments[3].spans[1].endTime" in r.text
    # A bad span costs only itself: good's two spans, and the valid one of bad_type and of bad_end.
    assert "rejected 3" in r.text and "stored 4 span(s)" in r.text
    stored = get_json(collector.url("query", f"/api/traces/{ids.trace_id('replayed.1.trace')}"))["data"][0]
    assert len(stored["spans"]) == 2
    check_segment_stored(good, stored)
    assert tags(stored["spans"][0])["sw8.trace_id"] == "replayed.1.trace"  # hashed: the original kept
    kept = get_json(collector.url("query", f"/api/traces/{ids.trace_id('replayed.4.trace')}"))["data"][0]
    assert [s["spanID"] for s in kept["spans"]] == [ids.span_id("replayed.4.segment", int(real["spans"][0]["spanId"]))]
    partial = get_json(collector.url("query", f"/api/traces/{ids.trace_id('replayed.2.trace')}"))["data"][0]
    assert [s["spanID"] for s in partial["spans"]] == [ids.span_id("replayed.2.segment", int(real["spans"][1]["spanId"]))]
    assert requests.get(collector.url("query", f"/api/traces/{ids.trace_id('replayed.3.trace')}"), timeout=10).status_code == 404

    # Not JSON, or not the shape the path takes: 400, nothing stored.
    for path, body in [("/v3/segment", b"{not json"), ("/v3/segments", json.dumps(renamed(5)).encode()), ("/v3/segment", b"[]")]:
        r = requests.post(http + path, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400 and r.text.strip(), (path, r.status_code, r.text)
    assert requests.get(collector.url("query", f"/api/traces/{ids.trace_id('replayed.5.trace')}"), timeout=10).status_code == 404
    assert requests.post(http + "/v3/segment", data=b"x", headers={"Content-Type": "text/plain"}, timeout=10).status_code == 415

    # gRPC: a stream of good, undecodable and invalid messages; the good ones are stored.
    from skywalking.protocol.language_agent.Tracing_pb2 import SegmentObject
    from google.protobuf.json_format import ParseDict

    def message(segment):
        return ParseDict(segment, SegmentObject(), ignore_unknown_fields=True)
    g1, g2 = message(renamed(6)), message(renamed(7))
    invalid = message(renamed(8))
    invalid.spans[0].spanType = 7  # proto3 enums are open: an unknown value arrives as a number
    with grpc.insecure_channel(f"127.0.0.1:{collector.ports['skywalking_grpc']}") as channel:
        collect = channel.stream_unary("/skywalking.v3.TraceSegmentReportService/collect",
                                       request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as raised:
            collect(iter([g1.SerializeToString(), b"\x0a\xff", invalid.SerializeToString(), g2.SerializeToString()]), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "message[1]" in raised.value.details() and "message[2].spans[0].spanType" in raised.value.details()
        assert collect(iter([g1.SerializeToString()]), timeout=10) == b""  # an empty Commands
    for n in (6, 7):
        trace = get_json(collector.url("query", f"/api/traces/{ids.trace_id(f'replayed.{n}.trace')}"))["data"][0]
        check_segment_stored(renamed(n), trace)


def test_sw8_only_at_the_gateway_and_in_the_app_is_still_one_trace(procs, start_collector):
    """A SkyWalking-traced caller (Java-style trace id) enters through the gateway with sw8
    only; the app behind it copies sw8 and nothing else onto its call to the backend."""
    collector = start_collector(extra_args=["--storage", "memory"])
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans"
    inbound, _ = start_mesh(procs, collector, {"FORWARD_HEADERS": "sw8"})
    gateway = procs(Sidecar(BINARY, "--service", "ingress", "--inbound-port", "-1", "--outbound-port", "-1", "--gateway-port", "0",
                            "--route", "/=frontend", "--upstream", f"frontend=127.0.0.1:{inbound.ports['inbound']}",
                            "--collector", zipkin, "--propagation", FORMATS))
    original = "c0ffee.42.17000000000000001"
    header = ids.sw8(original, "c0ffee.42.17000000000000002", 3, service="shop-client", endpoint="/buy")
    r = requests.get(gateway.url("gateway", "/call/items"), headers={"sw8": header}, timeout=20)
    assert r.status_code == 200, r.text
    backend_saw = {k.lower(): v for k, v in json.loads(r.text)["headers"]}

    trace_id = ids.trace_id(original)

    def whole_trace():
        r = requests.get(collector.url("query", f"/api/traces/{trace_id}"), timeout=10)
        if r.status_code == 404:  # not exported yet
            return None
        assert r.status_code == 200, r.text
        d = r.json()["data"]
        return d and len(d[0]["spans"]) >= 4 and d[0]
    trace = wait_until(whole_trace, message="the gateway's, the app's and the backend's spans in one trace")
    spans = trace["spans"]
    assert all(tags(s).get("sw8.trace_id") == original for s in spans), [tags(s) for s in spans]
    by_service = {}
    for s in spans:
        by_service.setdefault((service_of(trace, s), tags(s)["span.kind"]), []).append(s)
    ingress = by_service[("ingress", "server")][0] if ("ingress", "server") in by_service else by_service[("ingress", "client")][0]
    gateway_last = by_service.get(("ingress", "client"), [ingress])[0]
    front_in = by_service[("frontend", "server")][0]
    front_out = by_service[("frontend", "client")][0]
    back = by_service[("backend", "server")][0]
    # The caller's span (not reported here) is the gateway's parent, by the same mapping.
    assert parent_of(ingress) == ids.span_id("c0ffee.42.17000000000000002", 3)
    assert parent_of(front_in) == gateway_last["spanID"]
    assert parent_of(front_out) == front_in["spanID"]
    assert parent_of(back) == front_out["spanID"]
    assert tags(front_out)["meshtrace.propagation.extracted"] == "sw8"
    # Downstream SkyWalking code sees the caller's own trace id, and the backend sidecar's span.
    got = ids.parse_sw8(backend_saw["sw8"])
    assert got["trace"] == original and got["segment"] == back["spanID"]
    # And W3C downstream carries the mapped id.
    assert backend_saw["traceparent"].split("-")[1] == trace_id

    # The doctor: the app forwards sw8 only, so W3C and B3 are lost at it (still one trace).
    # analyze leaves out spans that ended in its last 3 s (they may still be arriving): poll
    # until it has read the trace.
    def analysed():
        run = subprocess.run([BINARY, "analyze", "--query", f"http://127.0.0.1:{collector.ports['query']}", "--format", "json"],
                             capture_output=True, text=True, timeout=60)
        return json.loads(run.stdout)["traces"] >= 1 and run
    out = wait_until(analysed, timeout=30, interval=0.5, message="analyze reading the trace")
    findings = json.loads(out.stdout)["findings"]
    partial = [f for f in findings if f["kind"] == "partial-propagation" and f["service"] == "frontend"]
    assert partial and "forwards sw8 only" in partial[0]["summary"], out.stdout
    assert not [f for f in findings if f["kind"] in ("context-dropped", "orphan-spans") and f["service"] != "ingress"], out.stdout
