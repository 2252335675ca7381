"""WebSockets through the sidecar, with a client and a server we did not write (the `websockets`
package on both ends): the handshake is traced like any request (a span with status 101, the
app told this hop's trace context), and then the connection carries the app's frames both ways
until either end closes, as Istio passes WebSockets by default."""
import os
import threading
import time

import requests
from websockets.sync.client import connect
from websockets.sync.server import serve

from conftest import BINARY, wait_until
from sidecar.procs import Sidecar

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class EchoServer:
    """A WebSocket echo server on an ephemeral port; keeps each handshake's request headers."""

    def __init__(self):
        self.handshakes = []
        self.closed = threading.Event()

        def handler(ws):
            self.handshakes.append({k.lower(): v for k, v in ws.request.headers.raw_items()} | {":path": ws.request.path})
            try:
                for message in ws:
                    ws.send(message if isinstance(message, bytes) else "echo:" + message)
            finally:
                self.closed.set()

        self.server = serve(handler, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def spans_of(collector, service, count):
    def fetch():
        traces = requests.get(collector.url("zipkin", "/api/v2/traces"), params={"serviceName": service}, timeout=5).json()
        spans = [s for trace in traces for s in trace]
        return spans if len(spans) >= count else None
    return wait_until(fetch, timeout=20, message=f"{count} spans from {service}")


def test_a_websocket_session_through_the_inbound_sidecar(start_collector):
    app = EchoServer()
    collector = start_collector(extra_args=["--storage", "memory"])
    sidecar = Sidecar(BINARY, "--service", "chat", "--app-port", str(app.port), "--outbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans", "--export-flush-interval", "200ms")
    try:
        with connect(f"ws://127.0.0.1:{sidecar.ports['inbound']}/rooms/42", additional_headers={"traceparent": CALLER}) as ws:
            for i in range(50):
                ws.send(f"hello {i}")
                assert ws.recv(timeout=10) == f"echo:hello {i}"
            big = os.urandom(900 * 1024)  # one large binary message (random: permessage-deflate cannot shrink it)
            ws.send(big)
            assert ws.recv(timeout=10) == big
            time.sleep(0.3)  # idle a moment mid-session: the connection stays up
            ws.send("still there?")
            assert ws.recv(timeout=10) == "echo:still there?"
        assert app.closed.wait(10), "the close reached the app"

        handshake = app.handshakes[0]
        assert handshake[":path"] == "/rooms/42"
        assert handshake["upgrade"].lower() == "websocket" and "upgrade" in handshake["connection"].lower()
        version, trace_id, parent, flags = handshake["traceparent"].split("-")
        assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and parent != "00f067aa0ba902b7"
        assert "sec-websocket-key" in handshake and handshake.get("x-request-id")

        [span] = spans_of(collector, "chat", 1)
        assert span["name"] == "GET /rooms/{id}" and span["kind"] == "SERVER" and span["id"] == parent
        assert span["tags"]["http.status_code"] == "101" and "error" not in span["tags"], span["tags"]
        assert int(span["tags"]["response_size"]) > 900 * 1024, "the session's bytes, not just the handshake's"
        assert int(span["tags"]["request_size"]) > 900 * 1024
        assert span["duration"] >= 300_000, "the span lasts the session"

        metrics = requests.get(sidecar.url("metrics", "/stats/prometheus"), timeout=5).text
        assert any(l.startswith("istio_requests_total{") and 'response_code="101"' in l for l in metrics.splitlines()), metrics
        # The listener still serves plain requests on new connections.
        assert requests.get(sidecar.url("inbound", "/after"), timeout=10).status_code in (200, 400, 404, 426)
    finally:
        sidecar.kill()
        app.stop()


def test_a_refused_handshake_is_an_ordinary_answer_and_an_unreachable_app_a_503(start_collector):
    """A server that refuses the upgrade answers through the proxy as it would directly; with no
    app at all the handshake gets the proxy's 503 UF."""
    app = EchoServer()
    sidecar = Sidecar(BINARY, "--service", "chat", "--app-port", str(app.port), "--outbound-port", "-1", "--exporter", "none")
    dead = Sidecar(BINARY, "--service", "gone", "--app-port", "9", "--outbound-port", "-1", "--exporter", "none")
    try:
        # Not a valid handshake (no Sec-WebSocket-Key): the websockets server answers 400.
        r = requests.get(sidecar.url("inbound", "/rooms/1"), headers={"Connection": "Upgrade", "Upgrade": "websocket"}, timeout=10)
        assert r.status_code == 400, (r.status_code, r.text)
        try:
            connect(f"ws://127.0.0.1:{dead.ports['inbound']}/rooms/1", open_timeout=10).close()
            raise AssertionError("the handshake should have failed")
        except Exception as e:  # websockets raises InvalidStatus carrying the response
            response = getattr(e, "response", None)
            assert response is not None and response.status_code == 503, repr(e)
            assert b"upstream connect error" in response.body
    finally:
        sidecar.kill()
        dead.kill()
        app.stop()


def test_a_websocket_through_the_gateway_and_the_inbound_sidecar(start_collector):
    """client -> gateway -> chat's inbound sidecar -> app: the handshake crosses two proxies and
    comes out as one trace, the gateway's spans the parents of chat's SERVER span."""
    app = EchoServer()
    collector = start_collector(extra_args=["--storage", "memory"])
    zipkin = f"http://127.0.0.1:{collector.ports['zipkin']}/api/v2/spans"
    chat = Sidecar(BINARY, "--service", "chat", "--app-port", str(app.port), "--outbound-port", "-1",
                   "--collector", zipkin, "--export-flush-interval", "200ms")
    edge = Sidecar(BINARY, "--service", "edge", "--inbound-port", "-1", "--outbound-port", "-1", "--gateway-port", "0",
                   "--route", "/=chat", "--upstream", f"chat=127.0.0.1:{chat.ports['inbound']}",
                   "--collector", zipkin, "--export-flush-interval", "200ms")
    try:
        with connect(f"ws://127.0.0.1:{edge.ports['gateway']}/rooms/7") as ws:
            ws.send("via the edge")
            assert ws.recv(timeout=10) == "echo:via the edge"
        assert app.closed.wait(10)
        # The whole trace comes back for either service: the edge's SERVER and CLIENT spans, chat's SERVER.
        spans = spans_of(collector, "chat", 3)
        by_role = {(s["localEndpoint"]["serviceName"], s["kind"]): s for s in spans}
        server, client = by_role[("chat", "SERVER")], by_role[("edge", "CLIENT")]
        assert server["traceId"] == client["traceId"] and server["parentId"] == client["id"]
        assert client["tags"]["http.status_code"] == "101" and server["tags"]["http.status_code"] == "101"
    finally:
        edge.kill()
        chat.kill()
        app.stop()


def test_websocket_sessions_count_against_the_connection_limit():
    """Each session holds a connection to the app, so --max-connections bounds open sessions:
    past it the handshake gets 503 UO, and a closed session frees its slot."""
    app = EchoServer()
    sidecar = Sidecar(BINARY, "--service", "chat", "--app-port", str(app.port), "--outbound-port", "-1",
                      "--exporter", "none", "--max-connections", "1")
    url = f"ws://127.0.0.1:{sidecar.ports['inbound']}/rooms/1"
    try:
        with connect(url) as first:
            first.send("hi")
            assert first.recv(timeout=10) == "echo:hi"
            try:
                connect(url, open_timeout=10).close()
                raise AssertionError("a second session should have been refused")
            except Exception as e:  # websockets raises InvalidStatus carrying the response
                response = getattr(e, "response", None)
                assert response is not None and response.status_code == 503, repr(e)
                assert response.headers.get("x-meshtrace-response-flags") == "UO"
        # The first session closed: its connection (and slot) goes with it.
        wait_until(lambda: _try_session(url), timeout=10, message="a new session once the first closed")
    finally:
        sidecar.kill()
        app.stop()


def _try_session(url):
    try:
        with connect(url, open_timeout=5) as ws:
            ws.send("again")
            return ws.recv(timeout=5) == "echo:again"
    except Exception:
        return False
