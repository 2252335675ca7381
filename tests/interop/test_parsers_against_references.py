"""Differential fuzzing of the collector's ingest parsers against implementations we did not
write: Python's json module for Zipkin and OTLP JSON, Google's protobuf (protoc, C++) for OTLP
protobuf. (Zipkin proto3 against protoc is in test_zipkin_proto.py.) The same seeded mutations of
a valid body go to the reference and to the collector:

- what the reference cannot parse, the collector refuses with a 400 that says why;
- what the reference parses, the collector takes, or refuses naming the field that breaks a rule
  the reference does not know (a trace id of the wrong length, say);
- one exception, chosen: text that is not valid UTF-8 is repaired (U+FFFD) and kept, where both
  references refuse the whole body. Spans are not thrown away for one bad character.
"""
import json
import os
import random
import subprocess

import requests

from conftest import ROOT
from spans import mutate, new_rng, otlp_request, otlp_span, zipkin_span

PROTO_DIR = os.path.join(ROOT, "Protos")
EXPORT_REQUEST = "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest"

# Pieces a broken JSON writer leaves behind, spliced in at random places.
JSON_PIECES = ['{', '}', '[', ']', ',', ':', '"', '\\', 'null', 'true', '-0', '1e999', '0.5', '"x"',
               '\\ud800', '\\u00e9', '\\"', ' ', '{}', '[]', '""', '1' * 25]


def mutate_json(body, rng):
    if rng.random() < 0.5:
        return mutate(body, rng)
    b = bytearray(body)
    at = rng.randrange(len(b))
    piece = rng.choice(JSON_PIECES).encode()
    if rng.random() < 0.5:
        b[at:at] = piece
    else:
        b[at:at + len(piece)] = piece
    return bytes(b)


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def json_verdict(body):
    """Python's json as the reference: 'ok', 'utf-8' (the bytes are not UTF-8) or 'refused'."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "utf-8"
    try:
        json.loads(text, parse_constant=reject_constant)
        return "ok"
    except (ValueError, RecursionError):
        return "refused"


def protoc_verdict(body):
    """Google's C++ parser as the reference: 'ok', 'utf-8' (a string field is not UTF-8, which
    proto3 forbids) or 'refused'."""
    out = subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", f"--decode={EXPORT_REQUEST}",
                          "opentelemetry/proto/collector/trace/v1/trace_service.proto"],
                         input=body, capture_output=True, timeout=30)
    if out.returncode == 0:
        return "ok"
    return "utf-8" if b"invalid UTF-8" in out.stderr else "refused"


def differential(post, valid, edit, verdict, rounds, seed, rule_broken):
    """Posts `rounds` edits of `valid` and holds each answer to the reference's verdict; returns
    how many fell on each side, so a caller can check the mutations reached every case."""
    rng = random.Random(seed)
    counts = {"both parse": 0, "both refuse": 0, "rule broken": 0, "utf-8 repaired": 0}
    session = requests.Session()
    for i in range(rounds):
        body = edit(valid, rng)
        seen = verdict(body)
        r = post(session, body)
        where = f"input {i} {body[:400]!r}: reference {seen}, collector {r.status_code} {r.text[:300]!r}"
        assert r.status_code in (200, 202, 400), where
        accepted = r.status_code != 400
        if seen == "ok" and accepted:
            counts["both parse"] += 1
        elif seen == "ok":
            assert rule_broken(r), where
            counts["rule broken"] += 1
        elif seen == "utf-8" and accepted:
            counts["utf-8 repaired"] += 1
        else:
            assert not accepted and r.content, where
            counts["both refuse"] += 1
    print(counts)
    return counts


def zipkin_body():
    rng = new_rng(7)
    spans = [zipkin_span(rng) for _ in range(3)]
    spans[0].update(annotations=[{"timestamp": spans[0]["timestamp"] + 5, "value": "cache miss \u00e9 \"q\""}],
                    remoteEndpoint={"serviceName": "db", "ipv6": "2001:db8::1", "port": 5432},
                    tags={"http.method": "GET", "error": "boom", "note": "tab\tline\n\U0001F600"}, debug=True)
    spans[1]["parentId"] = spans[0]["id"]
    spans[2].update(shared=True, kind="CLIENT")
    return json.dumps(spans).encode()


def test_zipkin_json_against_pythons_json(collector):
    url = collector.url("zipkin", "/api/v2/spans")

    def post(session, body):
        return session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)

    def rule_broken(r):
        # The span and field that break a Zipkin rule, e.g. `spans[1].traceId: must be ...`,
        # or a body whose top level is not the list of spans Zipkin's API takes.
        return r.text.startswith("spans[") or "expected" in r.text

    counts = differential(post, zipkin_body(), mutate_json, json_verdict, 600, 0x2F1, rule_broken)
    assert counts["both parse"] >= 40 and counts["both refuse"] >= 40, counts
    assert counts["rule broken"] >= 10 and counts["utf-8 repaired"] >= 5, counts


def test_otlp_json_against_pythons_json(collector):
    url = collector.url("otlp", "/v1/traces")
    rng = new_rng(8)
    span = otlp_span(rng, name="get /orders/{id}", attributes=[
        {"key": "http.method", "value": {"stringValue": "GET"}},
        {"key": "retries", "value": {"intValue": "2"}},
        {"key": "ratio", "value": {"doubleValue": 0.25}},
        {"key": "ok", "value": {"boolValue": True}},
        {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 3}]}}},
    ], events=[{"timeUnixNano": "1700000000000000001", "name": "retry \u00e9"}], status={"code": 2, "message": "boom"})
    valid = json.dumps(otlp_request([span, otlp_span(rng, trace_id=span["traceId"], parentSpanId=span["spanId"])])).encode()

    def post(session, body):
        return session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)

    def rule_broken(r):
        return "resourceSpans" in r.text or "expected" in r.text

    counts = differential(post, valid, mutate_json, json_verdict, 600, 0x2F2, rule_broken)
    assert counts["both parse"] >= 40 and counts["both refuse"] >= 40, counts
    assert counts["rule broken"] >= 5 and counts["utf-8 repaired"] >= 5, counts


def otlp_protobuf_body():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="orders"))
    ss = rs.scope_spans.add()
    ss.scope.name = "test"
    for n in range(2):
        s = ss.spans.add()
        s.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
        s.span_id = bytes.fromhex(f"b7ad6b716920333{n}")
        if n:
            s.parent_span_id = bytes.fromhex("b7ad6b7169203330")
        s.name = f"get /orders/{{id}} {n}"
        s.kind = 2
        s.start_time_unix_nano = 1_700_000_000_000_000_000 + n
        s.end_time_unix_nano = 1_700_000_000_002_000_000
        s.attributes.extend([KeyValue(key="http.method", value=AnyValue(string_value="GET")),
                             KeyValue(key="retries", value=AnyValue(int_value=2)),
                             KeyValue(key="ratio", value=AnyValue(double_value=0.25)),
                             KeyValue(key="note", value=AnyValue(string_value="caf\u00e9 \U0001F600"))])
        e = s.events.add()
        e.time_unix_nano = 1_700_000_000_001_000_000
        e.name = "retry"
        s.status.code = 2
        s.status.message = "boom"
    return request.SerializeToString()


def test_otlp_protobuf_against_protoc(collector):
    url = collector.url("otlp", "/v1/traces")

    def post(session, body):
        return session.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)

    def rule_broken(r):
        # An OTLP protobuf error is a google.rpc.Status whose message names the field.
        return b"resourceSpans" in r.content or b"spans" in r.content

    counts = differential(post, otlp_protobuf_body(), mutate, protoc_verdict, 600, 0x2F3, rule_broken)
    assert counts["both parse"] >= 40 and counts["both refuse"] >= 40, counts
    assert counts["utf-8 repaired"] >= 5, counts
