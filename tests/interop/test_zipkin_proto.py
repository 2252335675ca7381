"""Zipkin v2 proto3 checked by Google's own protobuf implementation (`protoc --encode` and
`--decode`, C++), not by the hand-written reader and writer under test: spans protoc encodes are
ingested by the collector, and the spans a sidecar exports with `--exporter zipkin-proto` are
read back by protoc."""
import os
import random
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from conftest import BINARY, ROOT, get_json, wait_until
from sidecar.procs import EchoApp, Sidecar
from spans import mutate

PROTO_DIR = os.path.join(ROOT, "Protos", "zipkin")
TRACE = "0af7651916cd43dd8448eb211c80319c"


def protoc(*args, data):
    out = subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", *args, "zipkin.proto"], input=data,
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def octal(hex_id):
    """A hex id as a protobuf text-format bytes literal."""
    return "".join(f"\\{int(hex_id[i:i + 2], 16):03o}" for i in range(0, len(hex_id), 2))


SPANS_TEXT = f"""
spans {{
  trace_id: "{octal(TRACE)}"
  id: "{octal('b7ad6b7169203331')}"
  kind: SERVER
  name: "get /orders/{{id}}"
  timestamp: 1700000000000001
  duration: 2500
  local_endpoint {{ service_name: "orders" ipv4: "\\012\\000\\000\\007" port: 8080 }}
  remote_endpoint {{ service_name: "gateway" ipv6: "\\040\\001\\015\\270\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\001" port: 443 }}
  annotations {{ timestamp: 1700000000000900 value: "cache miss" }}
  tags {{ key: "http.method" value: "GET" }}
  tags {{ key: "http.status_code" value: "503" }}
  tags {{ key: "error" value: "upstream reset" }}
  tags {{ key: "note" value: "caf\\303\\251 \\"quoted\\"" }}
}}
spans {{
  trace_id: "{octal(TRACE)}"
  parent_id: "{octal('b7ad6b7169203331')}"
  id: "{octal('00f067aa0ba902b7')}"
  kind: CLIENT
  name: "select"
  timestamp: 1700000000000100
  duration: 900
  local_endpoint {{ service_name: "orders" }}
  remote_endpoint {{ service_name: "postgres" }}
  debug: true
}}
"""


def post(collector, body):
    return requests.post(collector.url("zipkin", "/api/v2/spans"), data=body,
                         headers={"Content-Type": "application/x-protobuf"}, timeout=10)


def trace_spans(collector):
    r = requests.get(collector.url("zipkin", f"/api/v2/trace/{TRACE}"), timeout=5)
    return r.json() if r.status_code == 200 else None


def test_the_collector_reads_what_protoc_encodes(collector):
    body = protoc("--encode=zipkin.proto3.ListOfSpans", data=SPANS_TEXT.encode())
    r = post(collector, body)
    assert r.status_code == 202, (r.status_code, r.text)
    spans = wait_until(lambda: trace_spans(collector), message="the protoc-encoded trace")
    by_id = {s["id"]: s for s in spans}
    server, client = by_id["b7ad6b7169203331"], by_id["00f067aa0ba902b7"]
    assert server["traceId"] == TRACE and "parentId" not in server and server["kind"] == "SERVER"
    assert server["name"] == "get /orders/{id}"
    assert server["timestamp"] == 1700000000000001 and server["duration"] == 2500
    assert server["localEndpoint"] == {"serviceName": "orders", "ipv4": "10.0.0.7", "port": 8080}
    assert server["remoteEndpoint"] == {"serviceName": "gateway", "ipv6": "2001:db8::1", "port": 443}
    assert server["annotations"] == [{"timestamp": 1700000000000900, "value": "cache miss"}]
    assert server["tags"]["http.method"] == "GET" and server["tags"]["error"] == "upstream reset"
    assert server["tags"]["note"] == 'café "quoted"'
    assert client["parentId"] == "b7ad6b7169203331" and client["kind"] == "CLIENT" and client.get("debug") is True
    # The same trace through the Jaeger API: the error tag made it an error span.
    [trace] = get_json(collector.url("query", f"/api/traces/{TRACE}"))["data"]
    jserver = next(s for s in trace["spans"] if s["spanID"] == "b7ad6b7169203331")
    assert {"key": "error", "type": "bool", "value": True} in jserver["tags"], jserver["tags"]


def test_bad_protobuf_is_a_400_naming_the_span_and_field(collector):
    body = protoc("--encode=zipkin.proto3.ListOfSpans", data=SPANS_TEXT.encode())
    truncated = post(collector, body[:-3])
    assert truncated.status_code == 400 and "truncated" in truncated.text, truncated.text
    no_id = SPANS_TEXT.replace(f'id: "{octal("00f067aa0ba902b7")}"', "")
    missing = post(collector, protoc("--encode=zipkin.proto3.ListOfSpans", data=no_id.encode()))
    assert missing.status_code == 400 and "spans[1].id: required" in missing.text, missing.text
    short = SPANS_TEXT.replace(f'trace_id: "{octal(TRACE)}"', 'trace_id: "abc"', 1)
    bad = post(collector, protoc("--encode=zipkin.proto3.ListOfSpans", data=short.encode()))
    assert bad.status_code == 400 and "spans[0].traceId: must be 8 or 16 bytes, got 3" in bad.text, bad.text
    # Nothing of a rejected batch was stored, and the collector still takes good ones.
    assert requests.get(collector.url("zipkin", f"/api/v2/trace/{TRACE}"), timeout=5).status_code == 404
    assert post(collector, body).status_code == 202


# A body on which SwiftProtobuf's generated parser and Google's disagree: a tag entry whose
# key has the wrong wire type, then a field cut short. SwiftProtobuf keeps an empty tag; protoc
# and the collector refuse the body.
LENIENT_IN_SWIFTPROTOBUF = [
    (
        "0abb020a105b8efff798038103d269b633813fc60c1208eee19b7ec3c1b0ff1a08eee19b7ec3c1b10120022a0a474554"
        "202f6170692f3131011d6171e87c050038c0843d420c0a0a6d792e736572766963654a1d0a01781204010203041a1000"
        "00000000000000000000000000000120095210090500000000000000120572657472795a120a0b687474702e6d657468"
        "6f6412034745545a170a10687474702e7374617475735f636f646512033730305a0f0a0773616d706c65641204747275"
        "655a0d0a05726174696f1204302e32355a100a04626c6f1208414141774f513df53d5a0f0a046c69737412075b226122"
        "2c325d5a1f0a07756e69636f64651214c3a9202271756f7465642220f09f9880200a09015a190a106f74656c2e737461"
        "7475735f636f646512054552524f525a0d0a056572726f721204626f6f6d0a360a080000000000000abc1a0800000000"
        "0000000220012a036f70323102401e18240a0600380542050a037376635a070a016b120276320a360a08000000000000"
        "0abc1a08000000000000000320012a036f70333103401e18240a0600380542050a037376635a070a016b12027633"
    ),
]


def test_the_collector_accepts_and_refuses_what_protoc_does(collector):
    """Differential fuzzing against Google's parser: 600 seeded mutations of a valid body. What
    protoc cannot parse, the collector refuses (400); what protoc parses, the collector stores,
    unless a span breaks Zipkin's own rules (an id of the wrong size, say), which protoc does not
    know and the collector names. One exception, chosen: a string of invalid UTF-8 is repaired
    (U+FFFD), as the JSON path repairs it, where protoc refuses the whole message. SwiftProtobuf's
    generated code, the Swift tests' reference, lets some malformed map entries pass that both
    protoc and the collector refuse: hence this test against protoc."""
    rng = random.Random(0x5EED)
    valid = protoc("--encode=zipkin.proto3.ListOfSpans", data=SPANS_TEXT.encode())
    counts = {"both parse": 0, "both refuse": 0, "rule broken": 0, "utf-8 repaired": 0}
    for known in LENIENT_IN_SWIFTPROTOBUF:
        body = bytes.fromhex(known)
        refused = subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", "--decode=zipkin.proto3.ListOfSpans", "zipkin.proto"],
                                 input=body, capture_output=True, timeout=30)
        assert refused.returncode != 0
        r = post(collector, body)
        assert r.status_code == 400 and "spans[0]: malformed protobuf: truncated" in r.text, r.text
    for i in range(600):
        body = mutate(valid, rng)
        parsed = subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", "--decode=zipkin.proto3.ListOfSpans", "zipkin.proto"],
                                input=body, capture_output=True, timeout=30)
        r = post(collector, body)
        where = f"input {i} ({body.hex()}): protoc {parsed.returncode} {parsed.stderr.decode(errors='replace')!r}, collector {r.status_code} {r.text!r}"
        assert r.status_code in (202, 400), where
        if parsed.returncode == 0 and r.status_code == 202:
            counts["both parse"] += 1
        elif parsed.returncode == 0:
            assert "malformed" not in r.text and r.text.startswith("spans["), where
            counts["rule broken"] += 1
        elif b"invalid UTF-8" in parsed.stderr:
            counts["utf-8 repaired" if r.status_code == 202 else "both refuse"] += 1
        else:
            assert r.status_code == 400 and r.text.strip(), where
            counts["both refuse"] += 1
    print(counts)
    # The mutations reach both sides of every rule, or the test proves little.
    assert counts["both parse"] >= 40 and counts["both refuse"] >= 40 and counts["rule broken"] >= 1 and counts["utf-8 repaired"] >= 5, counts
    assert post(collector, valid).status_code == 202


class Capture(BaseHTTPRequestHandler):
    """Stands in for a collector: keeps each POST body and answers 202."""
    bodies = []
    content_types = []

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        Capture.bodies.append(self.rfile.read(length))
        Capture.content_types.append(self.headers.get("Content-Type"))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_protoc_reads_what_the_sidecar_exports():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = EchoApp()
    sidecar = Sidecar(BINARY, "--service", "orders", "--app-port", str(app.port), "--outbound-port", "-1",
                      "--collector", f"http://127.0.0.1:{server.server_address[1]}/api/v2/spans",
                      "--exporter", "zipkin-proto", "--export-flush-interval", "200ms")
    try:
        parent = "00-" + TRACE + "-b7ad6b7169203331-01"
        r = requests.get(sidecar.url("inbound", "/orders/42?x=1"), headers={"traceparent": parent, "User-Agent": "t/1"}, timeout=10)
        assert r.status_code == 200
        wait_until(lambda: Capture.bodies, timeout=20, message="an export batch")
    finally:
        sidecar.stop()
        app.kill()
        server.shutdown()
    assert Capture.content_types[0] == "application/x-protobuf"
    text = protoc("--decode=zipkin.proto3.ListOfSpans", data=b"".join(Capture.bodies)).decode()
    assert text.count("spans {") == 1, text
    assert re.search(r"^  kind: SERVER$", text, re.M), text
    assert re.search(r'^  name: "GET /orders/\{id\}"$', text, re.M), text
    assert re.search(r'^    service_name: "orders"$', text, re.M), text

    def tag(key):
        m = re.search(r'tags \{\n\s+key: "' + re.escape(key) + r'"\n\s+value: "([^"]*)"\n\s+\}', text)
        assert m, f"no tag {key} in:\n{text}"
        return m.group(1)

    assert tag("http.method") == "GET"
    assert tag("http.status_code") == "200"
    assert tag("http.url").endswith("/orders/42?x=1")
    assert tag("user_agent") == "t/1"
    assert tag("component") == "proxy"
    # The ids as protoc prints them (text-format escapes): the caller's trace id continued, the
    # caller's span the parent, a new span id for this hop.
    ids = {name: unescape(value).hex() for name, value in re.findall(r'^  (trace_id|parent_id|id): "(.*)"$', text, re.M)}
    assert ids["trace_id"] == TRACE, text
    assert ids["parent_id"] == "b7ad6b7169203331", text
    assert len(ids["id"]) == 16 and ids["id"] != "b7ad6b7169203331", text


def unescape(text):
    """A protobuf text-format string literal's bytes (C escapes: octal, \\n and friends)."""
    out, i = bytearray(), 0
    simple = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92}
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
        elif text[i + 1] in simple:
            out.append(simple[text[i + 1]])
            i += 2
        else:
            out.append(int(text[i + 1:i + 4], 8))
            i += 4
    return bytes(out)
