"""gRPC over h2c through the inbound sidecar, with clients and servers we did not write: Python's
grpcio on both ends, spans in a real collector, Istio's metrics scraped as Prometheus text.
Every call is its own SERVER span (as Envoy makes them), with the caller's trace continued and
this hop's context handed to the app."""
from concurrent import futures

import grpc
import pytest
import requests

from conftest import BINARY, refused_port, wait_until
from sidecar.procs import Sidecar

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
# The proxy is the peer here: grpcio must not go through an HTTP proxy from the environment.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


@pytest.fixture
def grpc_app():
    """demo.Reports: Get echoes its request, Missing fails NOT_FOUND, List streams three replies.
    `seen` keeps each call's metadata."""
    seen = []

    def get(request, context):
        seen.append(("Get", dict(context.invocation_metadata())))
        return b"report:" + request

    def missing(request, context):
        seen.append(("Missing", dict(context.invocation_metadata())))
        context.abort(grpc.StatusCode.NOT_FOUND, "no such report")

    def slow(request, context):
        seen.append(("Slow", dict(context.invocation_metadata())))
        context.add_callback(lambda: seen.append(("Slow cancelled", {})))
        wait_until(lambda: not context.is_active(), timeout=10, message="the call to be cancelled")
        return b"too late"

    def listing(request, context):
        seen.append(("List", dict(context.invocation_metadata())))
        for i in range(3):
            yield b"item-%d" % i

    handler = grpc.method_handlers_generic_handler("demo.Reports", {
        "Get": grpc.unary_unary_rpc_method_handler(get),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "List": grpc.unary_stream_rpc_method_handler(listing),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, seen
    finally:
        server.stop(grace=None)


def spans_of(collector, service, count):
    def fetch():
        traces = requests.get(collector.url("zipkin", "/api/v2/traces"), params={"serviceName": service, "limit": 100}, timeout=5).json()
        spans = [s for trace in traces for s in trace]
        return spans if len(spans) >= count else None
    return wait_until(fetch, timeout=20, message=f"{count} spans from {service}")


def test_grpc_calls_through_the_inbound_sidecar_are_spans_with_grpc_status(grpc_app, start_collector):
    app_port, seen = grpc_app
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = Sidecar(BINARY, "--service", "reports", "--app-port", str(app_port), "--outbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans", "--export-flush-interval", "200ms")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{sidecar.ports['inbound']}", options=CHANNEL_OPTIONS) as channel:
            get = channel.unary_unary("/demo.Reports/Get")
            caller = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
            assert get(b"42", metadata=[("traceparent", caller), ("x-request-id", "call-42")], timeout=10) == b"report:42"

            with pytest.raises(grpc.RpcError) as failure:
                channel.unary_unary("/demo.Reports/Missing")(b"7", timeout=10)
            assert failure.value.code() == grpc.StatusCode.NOT_FOUND
            assert failure.value.details() == "no such report"

            replies = list(channel.unary_stream("/demo.Reports/List")(b"", timeout=10))
            assert replies == [b"item-0", b"item-1", b"item-2"]

        # The app got this hop's context (same trace, the sidecar's span as parent), in W3C and B3.
        metadata = dict(seen)["Get"]
        version, trace_id, parent, flags = metadata["traceparent"].split("-")
        assert trace_id == CALLER_TRACE and parent != CALLER_SPAN and flags == "01"
        assert metadata["x-b3-traceid"] == CALLER_TRACE and metadata["x-b3-spanid"] == parent
        assert metadata["x-request-id"] == "call-42"

        spans = spans_of(collector, "reports", 3)
        by_name = {s["name"]: s for s in spans}
        assert set(by_name) == {"POST /demo.Reports/Get", "POST /demo.Reports/Missing", "POST /demo.Reports/List"}, by_name.keys()
        got = by_name["POST /demo.Reports/Get"]
        assert got["kind"] == "SERVER" and got["traceId"] == CALLER_TRACE and got["parentId"] == CALLER_SPAN
        assert got["id"] == parent, "the span the app was told is its parent"
        tags = got["tags"]
        assert tags["http.protocol"] == "HTTP/2" and tags["http.status_code"] == "200"
        assert tags["grpc.status_code"] == "0" and tags["rpc.system"] == "grpc" and "error" not in tags
        missing = by_name["POST /demo.Reports/Missing"]["tags"]
        assert missing["grpc.status_code"] == "5" and "error" not in missing, "NOT_FOUND is the caller's problem, not a server error"
        assert by_name["POST /demo.Reports/List"]["tags"]["grpc.status_code"] == "0"

        metrics = requests.get(sidecar.url("metrics", "/stats/prometheus"), timeout=5).text
        lines = [line for line in metrics.splitlines() if line.startswith("istio_requests_total{")]
        assert any('request_protocol="grpc"' in line and 'grpc_response_status="5"' in line and line.endswith(" 1") for line in lines), lines
        assert any('grpc_response_status="0"' in line and line.endswith(" 2") for line in lines), lines

        def total(name):
            return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + "{"))

        # Istio's gRPC message counters (Kiali's message rates): one request message per call;
        # replies: 1 (Get), 0 (Missing, trailers-only), 3 (List, streamed).
        assert total("istio_request_messages_total") == 3, metrics
        assert total("istio_response_messages_total") == 4, metrics
    finally:
        sidecar.kill()


def test_an_unreachable_grpc_app_is_unavailable_and_an_error_span(start_collector):
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = Sidecar(BINARY, "--service", "reports", "--app-port", str(refused_port()), "--outbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans", "--export-flush-interval", "200ms")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{sidecar.ports['inbound']}", options=CHANNEL_OPTIONS) as channel:
            with pytest.raises(grpc.RpcError) as failure:
                channel.unary_unary("/demo.Reports/Get")(b"1", timeout=10)
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "upstream connect error" in failure.value.details()
        span = spans_of(collector, "reports", 1)[0]
        # Connect retried twice (Istio's default policy) before giving up: UF, URX.
        assert span["tags"]["response_flags"] == "UF,URX" and span["tags"]["grpc.status_code"] == "14"
        assert span["tags"]["retry.count"] == "2"
        assert span["tags"]["error"] == "true"
    finally:
        sidecar.kill()


def test_a_call_past_the_request_timeout_is_deadline_exceeded(grpc_app, start_collector):
    """The app holds the call until it is cancelled; the sidecar's request timeout (300 ms here)
    answers DEADLINE_EXCEEDED, as Envoy and linkerd now answer timeouts, and cancels the app's
    stream. The client set no deadline of its own, so the status is the proxy's."""
    app_port, seen = grpc_app
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = Sidecar(BINARY, "--service", "reports", "--app-port", str(app_port), "--outbound-port", "-1",
                      "--request-timeout", "300ms",
                      "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans", "--export-flush-interval", "200ms")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{sidecar.ports['inbound']}", options=CHANNEL_OPTIONS) as channel:
            with pytest.raises(grpc.RpcError) as failure:
                channel.unary_unary("/demo.Reports/Slow")(b"1")
            assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, failure.value
            assert "upstream request timeout after 300 ms" in failure.value.details()
            # The connection serves the next call.
            assert channel.unary_unary("/demo.Reports/Get")(b"2", timeout=10) == b"report:2"
        wait_until(lambda: ("Slow cancelled", {}) in seen, timeout=10, message="the app's call to be cancelled")
        spans = {s["name"]: s for s in spans_of(collector, "reports", 2)}
        slow = spans["POST /demo.Reports/Slow"]["tags"]
        assert slow["response_flags"] == "UT" and slow["grpc.status_code"] == "4" and slow["error"] == "true", slow
    finally:
        sidecar.kill()


def test_grpc_through_http_proxy_is_relayed_call_by_call(grpc_app, start_collector):
    """A gRPC client that reaches `reports:50051` through `http_proxy` (grpcio's default when
    the variable is set, and what `meshtrace up` sets for every app) opens a CONNECT tunnel to
    the outbound listener. Its calls are still read one by one: a CLIENT span per call on the
    caller's sidecar, the parent of the SERVER span on the callee's, and no tunnel span."""
    app_port, seen = grpc_app
    collector = start_collector(extra_args=["--storage", "memory"])
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans"
    reports = Sidecar(BINARY, "--service", "reports", "--app-port", str(app_port), "--outbound-port", "-1",
                      "--collector", zipkin, "--export-flush-interval", "200ms")
    caller = Sidecar(BINARY, "--service", "frontend", "--inbound-port", "-1",
                     "--upstream", f"reports=127.0.0.1:{reports.ports['inbound']}",
                     "--collector", zipkin, "--export-flush-interval", "200ms")
    try:
        options = [("grpc.enable_http_proxy", 1), ("grpc.http_proxy", caller.url("outbound"))]
        with grpc.insecure_channel("reports:50051", options=options) as channel:
            assert channel.unary_unary("/demo.Reports/Get")(b"1", timeout=10) == b"report:1"
            assert list(channel.unary_stream("/demo.Reports/List")(b"", timeout=10)) == [b"item-0", b"item-1", b"item-2"]
        # Whole traces come back for either service: each side's own spans by their endpoint.
        everything = spans_of(collector, "frontend", 4)
        clients = [s for s in everything if s["localEndpoint"]["serviceName"] == "frontend"]
        servers = [s for s in everything if s["localEndpoint"]["serviceName"] == "reports"]
        assert sorted(s["name"] for s in clients) == ["POST /demo.Reports/Get", "POST /demo.Reports/List"], clients
        assert all(s["kind"] == "CLIENT" and s["tags"]["rpc.system"] == "grpc" for s in clients), clients
        assert all(s["tags"]["upstream_cluster"] == "outbound|50051||reports" for s in clients), clients
        by_parent = {s["parentId"]: s for s in servers}
        for client in clients:
            assert client["id"] in by_parent, "each call's SERVER span hangs off its CLIENT span"
            assert by_parent[client["id"]]["name"] == client["name"]
        metrics = requests.get(caller.url("metrics", "/stats/prometheus"), timeout=5).text
        assert "istio_tcp_connections_opened_total{" not in metrics, "no tunnel was counted"
        assert any(l.startswith("istio_requests_total{") and 'request_protocol="grpc"' in l for l in metrics.splitlines()), metrics
    finally:
        caller.kill()
        reports.kill()
