"""Transparent capture end to end, as Istio's iptables capture works (root only; skipped with the
reason otherwise; CI runs as root).

Two "pods" on a bridge, each a network namespace with its own 10.77.0.x address: frontend
(10.77.0.2) and backend (10.77.0.3). In each, `meshtrace iptables` installs the capture rules
and `meshtrace sidecar --capture` runs as uid 1337; the apps know nothing of a proxy and call
`backend` by name (`/etc/netns/NAME/hosts`). The clients ignore proxies: Python's http.client
(inside the frontend app), curl without -x, a grpcio call and a server-first TCP exchange. A
collector in the bridge's namespace receives the spans. Nothing is created in the machine's own
namespace, and the teardown (checked) removes every namespace, link and hosts file even when a
test fails; the machine's nat table is compared before and after.
"""
import json
import os
import re
import sys
import time

import pytest

from conftest import BINARY, wait_until
from capture import netns
from sidecar.procs import Proc

pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capture", "apps.py")
COLLECTOR = f"{netns.SUBNET}.1"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-0[13]$")  # sampled; bit 1 (random-trace-id) is set on traces a sidecar starts


def host_nat():
    """The machine's own nat tables and links, which the tests must leave as they found them."""
    return netns.sh("iptables", "-t", "nat", "-S").stdout + netns.sh("ip6tables", "-t", "nat", "-S").stdout + netns.host_links()


class Mesh:
    def __init__(self, pods, frontend, backend, sidecars):
        self.pods = pods
        self.frontend = frontend
        self.backend = backend
        self.sidecars = sidecars

    def trace(self, trace_id, count):
        """The trace's spans once `count` have arrived (Zipkin v2 JSON)."""
        def fetch():
            out = self.pods.switch_sh("curl", "-s", f"http://{COLLECTOR}:9411/api/v2/trace/{trace_id}", check=False).stdout
            try:
                spans = json.loads(out)
            except ValueError:
                return None
            return spans if isinstance(spans, list) and len(spans) >= count else None
        return wait_until(fetch, timeout=20, message=f"{count} spans of trace {trace_id}")

    def metrics(self, pod):
        return pod.sh("curl", "-s", "http://127.0.0.1:15090/stats/prometheus").stdout

    def stats(self, pod):
        return pod.sh("curl", "-s", "http://127.0.0.1:15000/stats").stdout


def start_pod(pods, pod, service, upstreams, proxy_uid="1337"):
    installed = pod.sh(BINARY, "iptables", "--proxy-uid", proxy_uid)
    assert "nat rules installed" in installed.stdout, installed.stdout
    args = [netns.proxy_binary(BINARY), "sidecar", "--capture", "--service", service, "--host", "0.0.0.0",
            "--collector", f"http://{COLLECTOR}:9411", "--export-flush-interval", "100ms", "--log-level", "info"]
    for upstream in upstreams:
        args += ["--upstream", upstream]
    # The sidecar's gid is not the rules' gid (1337): only the uid exclusion keeps its own
    # connections from being captured again, so every test here fails if that rule is dropped.
    sidecar = pods.track(Proc(pod.command(*args, uid=netns.PROXY_UID, gid=netns.PROXY_UID + 1), env=netns.clean_env()))
    sidecar.wait_for(r"meshtrace sidecar listening .*inbound_capture=\[::\]:15006 outbound_capture=\[::\]:15001 health=\[::\]:15021")
    return sidecar


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    netns.sweep_stale()
    before = host_nat()
    pods = netns.Pods()
    try:
        frontend = pods.add("frontend", 2, hosts={"backend": f"{netns.SUBNET}.3"})
        backend = pods.add("backend", 3, hosts={"frontend": f"{netns.SUBNET}.2"})
        data = tmp_path_factory.mktemp("collector")
        collector = pods.track(Proc(pods.switch_command(
            BINARY, "collector", "--host", COLLECTOR, "--zipkin-port", "9411", "--query-port", "16686",
            "--otlp-http-port", "4318", "--admin-port", "0", "--data-dir", str(data))))
        collector.wait_for(r"meshtrace collector listening")
        sidecars = {
            "frontend": start_pod(pods, frontend, "frontend", [f"backend={backend.ip}:8080"]),
            "backend": start_pod(pods, backend, "backend", [f"frontend={frontend.ip}:8080"]),
        }
        app = pods.track(Proc(backend.command(sys.executable, APPS, "backend"), env=netns.clean_env()))
        app.wait_for("backend ready")
        app = pods.track(Proc(frontend.command(sys.executable, APPS, "frontend"), env=netns.clean_env()))
        app.wait_for("frontend ready")
        yield Mesh(pods, frontend, backend, sidecars)
    finally:
        pods.close()
        left = pods.leftovers()
        assert not left, f"left behind: {left}"
        assert host_nat() == before, "the machine's own nat table changed"


def spans_by(spans, kind, service):
    found = [s for s in spans if s.get("kind") == kind and s["localEndpoint"]["serviceName"] == service]
    assert len(found) == 1, json.dumps(spans, indent=1)
    return found[0]


def test_an_app_calling_another_through_http_client_makes_one_trace(mesh):
    # A client outside both pods calls frontend's pod IP; frontend's app calls http://backend:8080
    # with Python's http.client, forwarding the trace headers as apps behind Istio do.
    out = mesh.pods.switch_sh("curl", "-s", "-f", f"http://{mesh.frontend.ip}:8080/call").stdout
    reply = json.loads(out)
    headers = reply["backend"]["headers"]
    m = TRACEPARENT.match(headers["traceparent"])
    assert m, headers
    trace_id = m.group(1)
    # W3C and B3 both reach the callee, naming the same span (backend's SERVER span, which its
    # sidecar injects, as Envoy does).
    assert headers["x-b3-traceid"] == trace_id and headers["x-b3-spanid"] == m.group(2), headers
    assert headers["x-b3-sampled"] == "1"
    spans = mesh.trace(trace_id, 3)
    assert len(spans) == 3, json.dumps(spans, indent=1)
    entry = spans_by(spans, "SERVER", "frontend")
    client = spans_by(spans, "CLIENT", "frontend")
    server = spans_by(spans, "SERVER", "backend")
    assert "parentId" not in entry
    assert client["parentId"] == entry["id"]
    assert server["parentId"] == client["id"]
    assert server["id"] == m.group(2)
    assert client["tags"]["upstream_cluster"] == "outbound|8080||backend"
    assert client["tags"]["peer.service"] == "backend"
    assert server["tags"]["upstream_cluster"] == "inbound|8080||"
    assert server["tags"]["http.status_code"] == "200"


def test_curl_without_a_proxy_is_captured(mesh):
    out = mesh.frontend.sh("curl", "-s", "-f", "http://backend:8080/echo?from=curl").stdout
    headers = json.loads(out)["headers"]
    m = TRACEPARENT.match(headers["traceparent"])
    assert m and headers["x-b3-traceid"] == m.group(1) and headers["x-b3-spanid"] == m.group(2), headers
    spans = mesh.trace(m.group(1), 2)
    client = spans_by(spans, "CLIENT", "frontend")
    server = spans_by(spans, "SERVER", "backend")
    assert server["parentId"] == client["id"]
    assert client["name"].startswith("get /echo") or client["name"].startswith("GET /echo"), client["name"]


def test_ipv6_is_captured_both_ways(mesh):
    # IP6T_SO_ORIGINAL_DST on both sidecars; backend's sidecar reaches its app from ::6.
    out = mesh.frontend.sh("curl", "-s", "-f", "-g", f"http://[{mesh.backend.ip6}]:8080/echo?v=6").stdout
    headers = json.loads(out)["headers"]
    m = TRACEPARENT.match(headers["traceparent"])
    assert m, headers
    spans = mesh.trace(m.group(1), 2)
    client = spans_by(spans, "CLIENT", "frontend")
    server = spans_by(spans, "SERVER", "backend")
    assert server["parentId"] == client["id"]
    assert client["tags"]["upstream_address"] == f"[{mesh.backend.ip6}]:8080", client["tags"]
    assert server["tags"]["upstream_address"] == f"[{mesh.backend.ip6}]:8080", server["tags"]


def test_a_grpc_call_is_captured_as_http2(mesh):
    out = mesh.frontend.sh(sys.executable, APPS, "grpc", "backend:50051").stdout
    metadata = json.loads(out)
    m = TRACEPARENT.match(metadata["traceparent"])
    assert m and metadata["x-b3-traceid"] == m.group(1), metadata
    spans = mesh.trace(m.group(1), 2)
    client = spans_by(spans, "CLIENT", "frontend")
    server = spans_by(spans, "SERVER", "backend")
    assert server["parentId"] == client["id"]
    assert client["tags"].get("rpc.system") == "grpc" and "/demo.Echo/Headers" in client["tags"]["http.url"], client


def metric(text, name, **labels):
    """The sum of `name`'s series whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def test_a_non_http_exchange_is_relayed_with_tcp_metrics(mesh):
    out = mesh.frontend.sh(sys.executable, APPS, "tcp", "backend", "9000").stdout
    assert json.loads(out) == {"banner": "220 backend ready", "answer": "250 got QUIT"}
    sent = len("220 backend ready\r\n250 got QUIT\r\n")
    received = len("QUIT\r\n")
    for pod, reporter in ((mesh.frontend, "source"), (mesh.backend, "destination")):
        labels = {"reporter": reporter, "source_workload": "frontend", "destination_service_name": "backend", "request_protocol": "tcp"}
        def closed(pod=pod, labels=labels):
            text = mesh.metrics(pod)
            return text if metric(text, "istio_tcp_connections_closed_total", **labels) >= 1 else None
        text = wait_until(closed, message=f"TCP metrics on {pod.name}")
        assert metric(text, "istio_tcp_connections_opened_total", **labels) == metric(text, "istio_tcp_connections_closed_total", **labels) >= 1
        assert metric(text, "istio_tcp_sent_bytes_total", **labels) >= sent
        assert metric(text, "istio_tcp_received_bytes_total", **labels) >= received
        # Not counted as HTTP requests.
        assert metric(text, "istio_requests_total", request_protocol="tcp") == 0


def test_istio_metrics_name_both_ends(mesh):
    mesh.frontend.sh("curl", "-s", "-f", "http://backend:8080/echo?for=metrics")
    source = {"reporter": "source", "source_workload": "frontend", "destination_service_name": "backend",
              "destination_workload": "backend", "response_code": "200", "request_protocol": "http"}
    destination = dict(source, reporter="destination")
    wait_until(lambda: metric(mesh.metrics(mesh.frontend), "istio_requests_total", **source) >= 1, message="source metrics")
    wait_until(lambda: metric(mesh.metrics(mesh.backend), "istio_requests_total", **destination) >= 1, message="destination metrics")


def test_no_loop_and_no_refusals(mesh):
    before = mesh.stats(mesh.frontend)
    calls = 5
    for i in range(calls):
        mesh.frontend.sh("curl", "-s", "-f", f"http://backend:8080/echo?n={i}")
    text = mesh.metrics(mesh.frontend)
    after = mesh.stats(mesh.frontend)
    # Every call went out once: the sidecar's own upstream connection was not captured again
    # (that would show as a second request, a 508 from the loop marker, or a refusal).
    count = lambda stats: int(re.search(r"downstream_rq_total: (\d+)", stats).group(1))
    assert count(after) - count(before) == calls, (before, after)
    for stats in (after, mesh.stats(mesh.backend)):
        assert "capture_refused: 0" in stats, stats
        assert "response_flags." not in stats, stats
    assert metric(text, "istio_requests_total", response_code="508") == 0


def test_resilience_holds_in_capture_mode(mesh):
    """Nothing listens on backend's 8081: backend's sidecar retries the connect and answers 503
    (UF, URX); frontend's retries that (Istio's default: twice on 503) and gives up with it."""
    out = mesh.frontend.sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://backend:8081/nothing").stdout
    assert out == "503", out
    wait_until(lambda: metric(mesh.metrics(mesh.backend), "istio_requests_total", reporter="destination", response_code="503",
                              response_flags="UF,URX") == 3, message="three attempts refused at backend")
    wait_until(lambda: metric(mesh.metrics(mesh.frontend), "istio_requests_total", reporter="source", response_code="503",
                              destination_service_name="backend", response_flags="URX") == 1, message="one request at frontend")
    assert "upstream_rq_retry: 2" in mesh.stats(mesh.frontend)


def test_captured_traffic_to_the_proxy_ports_is_refused(mesh):
    # From outside: the inbound capture port on the pod IP is itself captured; from inside: the
    # app dialling its own capture port. Both are closed, counted and logged, never looped.
    outside = mesh.pods.switch_sh("curl", "-s", "-m", "5", f"http://{mesh.backend.ip}:15006/", check=False)
    assert outside.returncode in (52, 56), outside
    inside = mesh.frontend.sh("curl", "-s", "-m", "5", f"http://{mesh.frontend.ip}:15001/", check=False)
    assert inside.returncode in (52, 56), inside
    assert "capture_refused: 1" in mesh.stats(mesh.backend)
    assert "capture_refused: 1" in mesh.stats(mesh.frontend)
    mesh.sidecars["backend"].wait_for(r"captured connection to the proxy's own port 10\.77\.0\.3:15006 refused")
    # The health port is excluded from capture: probes reach it.
    assert mesh.pods.switch_sh("curl", "-s", "-f", f"http://{mesh.backend.ip}:15021/healthz/ready").stdout == "LIVE\n"


def test_without_the_uid_exclusion_the_proxy_would_loop():
    """The rules' uid exclusion is the loop guard: with the rules naming another uid, the
    sidecar's own connection to backend is captured again, and the request comes back to the
    outbound listener marked as having left it (508), instead of reaching backend."""
    netns.sweep_stale()
    before = host_nat()
    pods = netns.Pods()
    try:
        solo = pods.add("solo", 4, hosts={"backend": f"{netns.SUBNET}.5"})
        target = pods.add("target", 5)
        start_pod(pods, solo, "solo", [], proxy_uid="4242")
        app = pods.track(Proc(target.command(sys.executable, APPS, "backend"), env=netns.clean_env()))
        app.wait_for("backend ready")
        status = solo.sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", "http://backend:8080/echo").stdout
        assert status == "508", status
    finally:
        pods.close()
        assert not pods.leftovers()
        assert host_nat() == before


def test_a_connection_without_an_original_destination_is_closed_with_a_log_line():
    """A capture listener reached where nothing redirected (no rules, so no conntrack entry):
    it cannot tell where the connection was going, so it closes it and says why."""
    netns.sweep_stale()
    pods = netns.Pods()
    try:
        bare = pods.add("bare", 6)
        sidecar = pods.track(Proc(bare.command(netns.proxy_binary(BINARY), "sidecar", "--capture", "--service", "bare",
                                               uid=netns.PROXY_UID), env=netns.clean_env()))
        sidecar.wait_for("meshtrace sidecar listening")
        result = bare.sh("curl", "-s", "-m", "5", "http://127.0.0.1:15001/", check=False)
        assert result.returncode in (52, 56), result
        sidecar.wait_for(r"error=SO_ORIGINAL_DST: No such file or directory .*closing a captured outbound connection: cannot read its original destination")
        assert "capture_refused: 1" in bare.sh("curl", "-s", "http://127.0.0.1:15000/stats").stdout
        assert sidecar.proc.poll() is None, "the sidecar must keep running"
    finally:
        pods.close()
        assert not pods.leftovers()
