"""W3C Trace Context Level 2 (https://www.w3.org/TR/trace-context-2/) through real sidecars.

Two `meshtrace sidecar` processes and a test service, as in the W3C test suite: the client's
request enters the inbound sidecar, reaches the test service (`w3c_forwarder.py`), which sends
the trace headers it received on through the outbound sidecar to a sink that echoes them. Each
case is also sent straight to the outbound sidecar, so both listeners parse every raw case.

The cases are written from the spec's text (section numbers in each), not copied from its test
suite. A request with a context the spec says to ignore must restart the trace: a fresh
trace-id, no tracestate, the random-trace-id flag set (we made the id). A valid one continues:
the same trace-id, a new parent-id (the sidecar's own span), the flags the spec defines passed on
and unknown ones zeroed, and the tracestate as the spec lets a vendor pass it on.
"""
import http.client
import json
import os
import re
import sys

import pytest

from conftest import BINARY
from sidecar.procs import EchoApp, Proc, Sidecar

HERE = os.path.dirname(os.path.abspath(__file__))
T = "4bf92f3577b34da6a3ce929d0e0e4736"
P = "00f067aa0ba902b7"
VALID = f"00-{T}-{P}-01"
OUT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-3])$")  # what we send: version 00, known flags only


class Forwarder(Proc):
    def __init__(self, proxy_port):
        super().__init__([sys.executable, os.path.join(HERE, "sidecar", "w3c_forwarder.py"), str(proxy_port)])
        m, _ = self.wait_for(r"w3c forwarder listening port=(\d+)")
        self.port = int(m.group(1))


@pytest.fixture(scope="module")
def mesh():
    started = []
    try:
        sink = EchoApp()
        started.append(sink)
        outbound = Sidecar(BINARY, "--service", "w3c-service", "--inbound-port", "-1",
                           "--upstream", f"sink=127.0.0.1:{sink.port}")
        started.append(outbound)
        forwarder = Forwarder(outbound.ports["outbound"])
        started.append(forwarder)
        inbound = Sidecar(BINARY, "--service", "w3c-service", "--app-port", str(forwarder.port), "--outbound-port", "-1")
        started.append(inbound)
        yield {"inbound": inbound.ports["inbound"], "outbound": outbound.ports["outbound"]}
    finally:
        for p in reversed(started):
            p.kill()


def send(port, target, lines):
    """One GET with `lines` as header field lines, in order (repeats kept as separate lines)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "sink" if target.startswith("http://") else "w3c-service")
        for name, value in lines:
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        return json.loads(body)
    finally:
        conn.close()


def trace_fields(header_lines):
    """The traceparent and tracestate lines among [name, value] pairs."""
    tp = [v for k, v in header_lines if k.lower() == "traceparent"]
    ts = [v for k, v in header_lines if k.lower() == "tracestate"]
    return tp, ts


def check(where, header_lines, expect, incoming_ids):
    """`expect` is ("continue", flags, tracestate or None) or ("restart",)."""
    tp, ts = trace_fields(header_lines)
    assert len(tp) == 1, f"{where}: one traceparent line, got {tp}"
    m = OUT.match(tp[0])
    assert m, f"{where}: {tp[0]!r} is not a version-00 traceparent with known flags only"
    trace_id, parent_id, flags = m.group(1), m.group(2), int(m.group(3), 16)
    assert parent_id != "0" * 16 and trace_id != "0" * 32
    if expect[0] == "restart":
        assert trace_id not in incoming_ids, f"{where}: the trace must restart, got {tp[0]}"
        assert flags & 0x02, f"{where}: a trace we start has the random-trace-id flag: {tp[0]}"
        assert ts == [], f"{where}: tracestate goes with an ignored traceparent, got {ts}"
    else:
        _, want_flags, want_state = expect
        assert trace_id == T, f"{where}: the trace continues: {tp[0]}"
        assert parent_id != P, f"{where}: the parent-id is the sidecar's own span: {tp[0]}"
        assert flags == want_flags, f"{where}: flags {flags:02x}, want {want_flags:02x}"
        assert ts == ([want_state] if want_state is not None else []), f"{where}: tracestate {ts}, want {want_state!r}"
    return tp[0], ts


def members(n):
    return ",".join(f"k{i}=v{i}" for i in range(n))


CASES = [
    # §3.2.2 traceparent fields; §3.2.2.5 trace-flags (bit 0 sampled, bit 1 random-trace-id; others zeroed).
    ("valid, sampled", [("traceparent", VALID)], ("continue", 0x01, None)),
    ("valid, not sampled", [("traceparent", f"00-{T}-{P}-00")], ("continue", 0x00, None)),
    ("random-trace-id flag passed on", [("traceparent", f"00-{T}-{P}-03")], ("continue", 0x03, None)),
    ("unknown flags zeroed", [("traceparent", f"00-{T}-{P}-ff")], ("continue", 0x03, None)),
    ("header name in any case", [("TraceParent", VALID)], ("continue", 0x01, None)),
    # RFC 9110 OWS around the field value.
    ("optional whitespace", [("traceparent", f" \t{VALID}\t ")], ("continue", 0x01, None)),
    # §3.2.4 versioning: a higher version is read as far as version 00 defines it.
    ("future version with more fields", [("traceparent", f"cc-{T}-{P}-01-what-the-future-will-be-like")],
     ("continue", 0x01, None)),
    ("future version, same length", [("traceparent", f"cc-{T}-{P}-01")], ("continue", 0x01, None)),
    ("future version, bad separator", [("traceparent", f"cc-{T}-{P}-01.what-the-future-will-not-be-like")], ("restart",)),
    ("version ff is invalid", [("traceparent", f"ff-{T}-{P}-01")], ("restart",)),
    ("version 00 is exactly 55 characters", [("traceparent", f"{VALID}-extra")], ("restart",)),
    ("version not hex", [("traceparent", f"0g-{T}-{P}-01")], ("restart",)),
    # §3.2.2.3/4: lower-case hex, not all zeros.
    ("upper-case trace-id", [("traceparent", f"00-{T.upper()}-{P}-01")], ("restart",)),
    ("upper-case parent-id", [("traceparent", f"00-{T}-{P.upper()}-01")], ("restart",)),
    ("all-zero trace-id", [("traceparent", f"00-{'0' * 32}-{P}-01")], ("restart",)),
    ("all-zero parent-id", [("traceparent", f"00-{T}-{'0' * 16}-01")], ("restart",)),
    ("short trace-id", [("traceparent", f"00-{T[:-1]}-{P}-01")], ("restart",)),
    ("flags not hex", [("traceparent", f"00-{T}-{P}-0x")], ("restart",)),
    # §3.2.1 / §4.3: two traceparent fields combine into a value that is not a traceparent.
    ("duplicated traceparent", [("traceparent", VALID), ("traceparent", f"00-{'a' * 32}-{P}-01")], ("restart",)),
    ("duplicated identical traceparent", [("traceparent", VALID), ("traceparent", VALID)], ("restart",)),
    # §3.3.1: tracestate is only read with a valid traceparent.
    ("tracestate without traceparent", [("tracestate", "foo=1")], ("restart",)),
    ("tracestate with an invalid traceparent", [("traceparent", f"00-{T}-{'0' * 16}-01"), ("tracestate", "foo=1")], ("restart",)),
    ("no context at all", [], ("restart",)),
    # §3.3.1.1: several tracestate fields are one list, in order.
    ("tracestate on two lines", [("traceparent", VALID), ("tracestate", "foo=1"), ("tracestate", "bar=2")],
     ("continue", 0x01, "foo=1,bar=2")),
    ("tracestate empty line", [("traceparent", VALID), ("tracestate", ""), ("tracestate", "foo=1")],
     ("continue", 0x01, "foo=1")),
    # §3.3.1.2: OWS around members, empty members allowed.
    ("tracestate whitespace and empty members", [("traceparent", VALID), ("tracestate", "foo=1 ,\t bar=2,, ")],
     ("continue", 0x01, "foo=1,bar=2")),
    # §3.3.1.3: at most 32 members; more makes the list invalid.
    ("32 members", [("traceparent", VALID), ("tracestate", members(32))], ("continue", 0x01, members(32))),
    ("32 members over two lines", [("traceparent", VALID), ("tracestate", members(16)),
                                   ("tracestate", ",".join(f"j{i}=w" for i in range(16)))],
     ("continue", 0x01, members(16) + "," + ",".join(f"j{i}=w" for i in range(16)))),
    ("33 members", [("traceparent", VALID), ("tracestate", members(33))], ("continue", 0x01, None)),
    # §3.3.1.3.1 key: lcalpha start, lcalpha/digit/_-*/ after, or tenant@system.
    ("key with every allowed character", [("traceparent", VALID), ("tracestate", "a0_-*/b=1")],
     ("continue", 0x01, "a0_-*/b=1")),
    ("multi-tenant key", [("traceparent", VALID), ("tracestate", "0tenant@sys=1,fw529a3039@dt=CgYx")],
     ("continue", 0x01, "0tenant@sys=1,fw529a3039@dt=CgYx")),
    ("upper-case key", [("traceparent", VALID), ("tracestate", "FOO=1,bar=2")], ("continue", 0x01, None)),
    ("key starting with a digit", [("traceparent", VALID), ("tracestate", "1foo=1")], ("continue", 0x01, None)),
    ("system-id starting with a digit", [("traceparent", VALID), ("tracestate", "tenant@1sys=1")], ("continue", 0x01, None)),
    ("system-id over 14 characters", [("traceparent", VALID), ("tracestate", "t@" + "s" * 15 + "=1")], ("continue", 0x01, None)),
    ("key over 256 characters", [("traceparent", VALID), ("tracestate", "a" * 257 + "=1")], ("continue", 0x01, None)),
    ("member without =", [("traceparent", VALID), ("tracestate", "foo")], ("continue", 0x01, None)),
    # §3.3.1.3.2 value: printable ASCII but , and =, no trailing space, at most 256.
    ("value with = in it", [("traceparent", VALID), ("tracestate", "foo=a=b")], ("continue", 0x01, None)),
    ("empty value", [("traceparent", VALID), ("tracestate", "foo=")], ("continue", 0x01, None)),
    ("value over 256 characters", [("traceparent", VALID), ("tracestate", "foo=" + "v" * 257)], ("continue", 0x01, None)),
    ("value with inner spaces", [("traceparent", VALID), ("tracestate", "foo=a b")], ("continue", 0x01, "foo=a b")),
    # §3.3.1.4: one entry per key, across lines too.
    ("duplicate key", [("traceparent", VALID), ("tracestate", "foo=1,foo=2")], ("continue", 0x01, None)),
    ("duplicate key over two lines", [("traceparent", VALID), ("tracestate", "foo=1"), ("tracestate", "foo=2")],
     ("continue", 0x01, None)),
]


@pytest.mark.parametrize("name,lines,expect", CASES, ids=[c[0] for c in CASES])
def test_w3c_case_through_inbound_and_outbound(mesh, name, lines, expect):
    incoming_ids = {T, "a" * 32}
    # Inbound listener -> test service: what the app received; the service forwards it through
    # the outbound listener to the sink.
    result = send(mesh["inbound"], "/w3c", lines)
    at_app, state_at_app = check("inbound -> app", result["received"], expect, incoming_ids)
    assert result["sink_status"] == 200
    forwarded = result["sink"]["headers"]
    tp, ts = trace_fields(forwarded)
    m, app = OUT.match(tp[0]) if len(tp) == 1 else None, OUT.match(at_app)
    assert m, f"outbound -> sink: {tp}"
    assert m.group(1) == app.group(1), "the forwarded context continues the app's trace"
    assert m.group(2) != app.group(2), "the outbound sidecar's own span is the sink's parent"
    assert m.group(3) == app.group(3), "the flags go on unchanged"
    assert ts == state_at_app, "the tracestate the app forwarded goes on unchanged"
    assert not any(k.lower() == "x-meshtrace-via" for k, _ in result["received"]), "mesh markers stay in the mesh"

    # The same raw case straight into the outbound listener (an app that sent it as is).
    direct = send(mesh["outbound"], "http://sink/w3c", lines)
    check("outbound -> sink", direct["headers"], expect, incoming_ids)


# --- HTTP/2: the same cases as gRPC calls (grpcio on both ends) ----------------------------
# Left out, because grpcio cannot send them: upper-case names (HTTP/2 field names are lower case,
# RFC 9113 8.2.1), values with edge whitespace or tabs, and a second traceparent (grpc core keeps
# only the last one). The duplicate-traceparent rule on HTTP/2 is checked in the Swift tests.
GRPC_CASES = [c for c in CASES
              if all(k == k.lower() and v == v.strip(" \t") and "\t" not in v for k, v in c[1])
              and sum(1 for k, _ in c[1] if k == "traceparent") <= 1]


@pytest.fixture(scope="module")
def grpc_mesh():
    from concurrent import futures

    import grpc

    def headers(request, context):
        return json.dumps([[k, v] for k, v in context.invocation_metadata()]).encode()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "w3c.Echo", {"Headers": grpc.unary_unary_rpc_method_handler(headers)}),))
    app_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    started = []
    try:
        inbound = Sidecar(BINARY, "--service", "w3c-grpc", "--app-port", str(app_port), "--outbound-port", "-1")
        started.append(inbound)
        outbound = Sidecar(BINARY, "--service", "w3c-grpc-client", "--inbound-port", "-1",
                           "--upstream", f"sink=127.0.0.1:{app_port}")
        started.append(outbound)
        yield {"inbound": inbound.ports["inbound"], "outbound": outbound.ports["outbound"], "app_port": app_port}
    finally:
        for p in reversed(started):
            p.kill()
        server.stop(grace=None)


def grpc_call(target, lines, proxy=None):
    import grpc
    options = [("grpc.enable_http_proxy", 1 if proxy else 0)]
    if proxy:
        options.append(("grpc.http_proxy", proxy))
    with grpc.insecure_channel(target, options=options) as channel:
        return json.loads(channel.unary_unary("/w3c.Echo/Headers")(b"", metadata=lines, timeout=20))


@pytest.mark.parametrize("name,lines,expect", GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_w3c_case_as_grpc_through_inbound_and_outbound(grpc_mesh, name, lines, expect):
    incoming_ids = {T, "a" * 32}
    check("grpc: inbound -> app", grpc_call(f"127.0.0.1:{grpc_mesh['inbound']}", lines), expect, incoming_ids)
    # Through the outbound listener as grpcio goes through an HTTP proxy: CONNECT, a 200, then
    # its preface (the gRPC server has sent its SETTINGS by then); each call relayed as a hop.
    seen = grpc_call(f"sink:{grpc_mesh['app_port']}", lines, proxy=f"http://127.0.0.1:{grpc_mesh['outbound']}")
    check("grpc: outbound (CONNECT) -> app", seen, expect, incoming_ids)
