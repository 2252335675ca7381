"""Bad input gets a clear 4xx naming the problem; valid data is kept; the server never dies."""
import gzip
import json
import random
import threading

import requests

from conftest import get_json
from spans import new_rng, otlp_request, otlp_span, zipkin_span

JSON = {"Content-Type": "application/json"}


def post_zipkin(c, body, headers=JSON):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(c.url("zipkin", "/api/v2/spans"), data=data, headers=headers, timeout=30)


def post_otlp(c, body, headers=JSON):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(c.url("otlp", "/v1/traces"), data=data, headers=headers, timeout=30)


def assert_alive(c):
    assert requests.get(c.url("admin", "/healthz"), timeout=5).status_code == 200


def test_zipkin_malformed_bodies(collector):
    rng = new_rng(1)
    cases = {
        b"{not json": "JSON",
        b"[{\"traceId\": }]": "JSON",
        b"{}": "list",
    }
    for body, _ in cases.items():
        r = post_zipkin(collector, body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.text.strip(), "error message must not be empty"
    v1 = [{"traceId": "1" * 16, "id": "2" * 16, "name": "x", "binaryAnnotations": []}]
    r = post_zipkin(collector, v1)
    assert r.status_code == 400 and "JSON_V1" in r.text, r.text
    # The spec marks the body required: an empty one is a 400 that says so; `[]` is an empty list.
    r = post_zipkin(collector, b"")
    assert r.status_code == 400 and "body is required" in r.text, r.text
    assert post_zipkin(collector, []).status_code == 202
    assert_alive(collector)


def test_zipkin_invalid_fields_name_span_and_field(collector):
    rng = new_rng(2)
    good = zipkin_span(rng)
    for field, value in [("traceId", "0" * 32), ("traceId", "abc"), ("traceId", "zz" * 8), ("id", "1234"),
                         ("id", "0" * 16), ("duration", -5), ("timestamp", -1), ("parentId", "xyz")]:
        bad = zipkin_span(rng)
        bad[field] = value
        r = post_zipkin(collector, [good, bad])
        assert r.status_code == 400, (field, value, r.text)
        assert "[1]" in r.text and field in r.text, f"message should name span [1] and field {field}: {r.text}"
    # Zipkin rejects the whole batch, so the good span of those batches was not stored.
    assert requests.get(collector.url("zipkin", f"/api/v2/trace/{good['traceId']}"), timeout=5).status_code == 404


def test_wrong_content_type_and_encoding(collector):
    r = post_zipkin(collector, b"<spans/>", headers={"Content-Type": "application/xml"})
    assert r.status_code == 415 and "application/json" in r.text
    r = post_otlp(collector, b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = post_zipkin(collector, b"[]", headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert r.status_code == 415 and "gzip" in r.text


def test_truncated_and_invalid_gzip(collector):
    rng = new_rng(3)
    body = gzip.compress(json.dumps([zipkin_span(rng) for _ in range(20)]).encode())
    r = post_zipkin(collector, body[: len(body) // 2], headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gunzip" in r.text.lower(), r.text
    r = post_zipkin(collector, b"definitely not gzip", headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    r = post_otlp(collector, body[:10], headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["message"], r.text
    ok = post_zipkin(collector, body, headers={**JSON, "Content-Encoding": "gzip"})
    assert ok.status_code == 202


def test_body_limits_give_413(collector):
    big = b"[" + b" " * (17 * 1024 * 1024) + b"]"
    r = post_zipkin(collector, big)
    assert r.status_code == 413 and "16777216" in r.text, r.text[:200]
    bomb = gzip.compress(b"[" + b" " * (70 * 1024 * 1024) + b"]")
    assert len(bomb) < 1024 * 1024
    r = post_zipkin(collector, bomb, headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.text, r.text
    assert_alive(collector)


def test_deeply_nested_json(collector):
    nested = "[" * 100000 + "]" * 100000
    span = json.dumps(zipkin_span(new_rng(13)))
    r = post_zipkin(collector, "[" + span[:-1] + ', "future": ' + nested + "}]")
    assert r.status_code == 400 and "nested deeper" in r.text, r.text[:300]
    r = post_zipkin(collector, nested)
    assert r.status_code == 400, r.text[:300]
    r = post_otlp(collector, '{"resourceSpans":[{"scopeSpans":[{"spans":[{"x":' + nested + "}]}]}]}")
    assert r.status_code == 400 and "nested deeper" in r.json()["message"], r.text[:300]
    assert_alive(collector)


def test_huge_attribute_values_are_truncated_and_counted(collector):
    rng = new_rng(4)
    span = zipkin_span(rng, service="huge")
    span["tags"]["blob"] = "x" * 100_000
    assert post_zipkin(collector, [span]).status_code == 202
    [stored] = get_json(collector.url("zipkin", f"/api/v2/trace/{span['traceId']}"))
    assert 0 < len(stored["tags"]["blob"]) <= 16384
    metrics = requests.get(collector.url("admin", "/metrics"), timeout=5).text
    line = [l for l in metrics.splitlines() if l.startswith("meshtrace_collector_truncated_attribute_values_total")
            and 'zipkin_json' in l]
    assert line and float(line[0].split()[-1]) >= 1, line


def test_unknown_fields_are_ignored(collector):
    rng = new_rng(5)
    span = zipkin_span(rng, futureField={"nested": [1, 2, 3]})
    assert post_zipkin(collector, [span]).status_code == 202
    ospan = otlp_span(rng, somethingNew=True)
    r = post_otlp(collector, otlp_request([ospan]) | {"extra": 1})
    assert r.status_code == 200 and "partialSuccess" not in r.json(), r.text


def test_otlp_partial_success_keeps_valid_spans(collector):
    rng = new_rng(6)
    good = otlp_span(rng, name="good")
    bad_id = otlp_span(rng, name="bad", traceId="00" * 16)
    bad_time = otlp_span(rng, name="bad-time")
    bad_time["endTimeUnixNano"] = "1"
    r = post_otlp(collector, otlp_request([good, bad_id, bad_time], service="partial"))
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    assert "spans[1]" in partial["errorMessage"] and "spans[2]" in partial["errorMessage"], partial
    assert requests.get(collector.url("zipkin", f"/api/v2/trace/{good['traceId']}"), timeout=5).status_code == 200
    # base64 ids, as swift-otel's JSON exporter sends them
    import base64
    b64 = otlp_span(rng, name="b64")
    tid = bytes.fromhex(b64["traceId"])
    b64["traceId"] = base64.b64encode(tid).decode()
    b64["spanId"] = base64.b64encode(bytes.fromhex(b64["spanId"])).decode()
    r = post_otlp(collector, otlp_request([b64], service="partial"))
    assert r.status_code == 200 and "partialSuccess" not in r.json(), r.text
    assert requests.get(collector.url("query", f"/api/traces/{tid.hex()}"), timeout=5).status_code == 200


def test_otlp_protobuf_errors_are_rpc_status(collector):
    r = post_otlp(collector, b"\xff\xff\xff\xff\x0f", headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "application/x-protobuf"
    from google.rpc import status_pb2  # shipped with the googleapis-common-protos dependency of the OTLP exporter
    status = status_pb2.Status()
    status.ParseFromString(r.content)
    assert status.code == 3 and status.message, status


def test_query_parameter_errors(collector):
    cases = [
        ("zipkin", "/api/v2/traces", {"limit": "abc"}, "limit"),
        ("zipkin", "/api/v2/traces", {"minDuration": "-4.5"}, "minDuration"),
        ("zipkin", "/api/v2/traces", {"endTs": "soon"}, "endTs"),
        ("zipkin", "/api/v2/traces", {"minDuration": "99999999999999999999"}, "minDuration"),  # not an int64
        ("zipkin", "/api/v2/spans", {}, "serviceName"),
        ("zipkin", "/api/v2/traceMany", {"traceIds": "1111111111111111"}, "single"),
        ("zipkin", "/api/v2/dependencies", {}, "endTs"),
        ("query", "/api/traces", {}, "service"),
        ("query", "/api/traces", {"service": "a", "minDuration": "fast"}, "minDuration"),
        ("query", "/api/traces", {"service": "a", "minDuration": "2s", "maxDuration": "1s"}, "maxDuration"),
        ("query", "/api/traces", {"service": "a", "tags": "{oops"}, "tags"),
        ("query", "/api/traces", {"service": "a", "limit": "x"}, "limit"),
        ("query", "/api/traces/not-hex", {}, "traceID"),
        ("query", "/api/operations", {}, "service"),
        ("query", "/api/operations", {"service": "a", "spanKind": "sideways"}, "spanKind"),
        ("query", "/api/meshtrace/graph", {"endTs": "99999999999999999"}, "endTs"),
    ]
    for port, path, params, needle in cases:
        r = requests.get(collector.url(port, path), params=params, timeout=5)
        assert r.status_code == 400, (path, params, r.status_code, r.text)
        assert needle in r.text, (path, params, r.text)
        if port == "query" and path.startswith("/api/") and not path.startswith("/api/meshtrace/"):
            body = r.json()
            assert body["data"] is None and body["errors"][0]["code"] == 400, body
    r = requests.get(collector.url("query", "/api/traces/" + "ab" * 16), timeout=5)
    assert r.status_code == 404 and r.json()["errors"][0]["msg"] == "trace not found"
    r = requests.get(collector.url("zipkin", "/api/v2/trace/" + "ab" * 16), timeout=5)
    assert r.status_code == 404 and "not found" in r.text



def test_schema_valid_query_values_are_answered_not_refused(collector):
    """Values the published specs allow get an answer, never a 400 or an overflow trap: Zipkin's
    spec lists only 200 for /traces and /dependencies and 200/404 for /trace/{id}, and Jaeger's
    query service takes any int64 time and any limit."""
    cases = [
        ("zipkin", "/api/v2/traces", {"minDuration": "-4"}, 200),
        ("zipkin", "/api/v2/traces", {"limit": "0"}, 200),
        ("zipkin", "/api/v2/traces", {"endTs": "9223372036854775807"}, 200),
        ("zipkin", "/api/v2/traces", {"minDuration": "9223372036854775807"}, 200),
        ("zipkin", "/api/v2/traces", {"lookback": "-1"}, 200),
        ("zipkin", "/api/v2/dependencies", {"endTs": "99999999999999999"}, 200),
        ("zipkin", "/api/v2/trace/xyz", {}, 404),
        ("query", "/api/traces", {"service": "a", "limit": "0"}, 200),
        ("query", "/api/traces", {"service": "a", "end": "9223372036854775807"}, 200),
        ("query", "/api/traces", {"service": "a", "start": "5", "end": "4"}, 200),
        ("query", "/api/dependencies", {"endTs": "99999999999999999"}, 200),
    ]
    for port, path, params, status in cases:
        r = requests.get(collector.url(port, path), params=params, timeout=5)
        assert r.status_code == status, (path, params, r.status_code, r.text)
    assert "xyz" in requests.get(collector.url("zipkin", "/api/v2/trace/xyz"), timeout=5).text
    assert_alive(collector)

def test_full_queue_answers_503_with_retry_after(start_collector):
    c = start_collector(extra_args=["--ingest-queue-capacity", "500"])
    rng = new_rng(11)
    results = []
    lock = threading.Lock()

    def sender(seed):
        local = random.Random(seed)
        session = requests.Session()
        for _ in range(40):
            batch = [zipkin_span(local, service="pressure") for _ in range(300)]
            r = session.post(c.url("zipkin", "/api/v2/spans"), json=batch, timeout=30)
            with lock:
                results.append((r.status_code, r.headers.get("Retry-After"), batch[0]["traceId"]))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = {code for code, _, _ in results}
    assert codes <= {202, 503}, codes
    throttled = [r for r in results if r[0] == 503]
    assert throttled, "six concurrent senders never filled a 500-span queue"
    assert all(retry == "1" for _, retry, _ in throttled)
    for code, _, trace_id in results:
        if code == 202:
            assert requests.get(c.url("zipkin", f"/api/v2/trace/{trace_id}"), timeout=5).status_code == 200


def test_random_bodies_never_crash_the_server(collector):
    rng = random.Random(20261122)
    valid = json.dumps([zipkin_span(rng) for _ in range(3)]).encode()
    valid_otlp = json.dumps(otlp_request([otlp_span(rng)])).encode()
    targets = [
        (collector.url("zipkin", "/api/v2/spans"), "application/json", valid),
        (collector.url("zipkin", "/api/v2/spans"), "application/x-protobuf", b"\x0a\x05hello"),
        (collector.url("otlp", "/v1/traces"), "application/json", valid_otlp),
        (collector.url("otlp", "/v1/traces"), "application/x-protobuf", b"\x0a\x02\x12\x00"),
    ]
    session = requests.Session()
    for i in range(400):
        url, ctype, seed = targets[i % len(targets)]
        body = bytearray(seed)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            if op < 0.4 and body:
                body[rng.randrange(len(body))] = rng.randrange(256)
            elif op < 0.7:
                body[rng.randrange(len(body) + 1):rng.randrange(len(body) + 1)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            elif body:
                del body[rng.randrange(len(body)):]
        r = session.post(url, data=bytes(body), headers={"Content-Type": ctype}, timeout=10)
        assert r.status_code in (200, 202, 400), (url, bytes(body)[:80], r.status_code, r.text)
    assert_alive(collector)


def test_metrics_and_health(collector):
    rng = new_rng(12)
    assert post_zipkin(collector, [zipkin_span(rng) for _ in range(5)]).status_code == 202
    assert requests.get(collector.url("admin", "/readyz"), timeout=5).status_code == 200
    text = requests.get(collector.url("admin", "/metrics"), timeout=5).text
    for name in ["meshtrace_collector_spans_received_total", "meshtrace_collector_spans_accepted_total",
                 "meshtrace_collector_spans_rejected_total", "meshtrace_collector_queue_depth_spans",
                 "meshtrace_collector_write_latency_seconds"]:
        assert name in text, name
    accepted = [l for l in text.splitlines() if l.startswith("meshtrace_collector_spans_accepted_total") and "zipkin_json" in l]
    assert accepted and float(accepted[0].split()[-1]) == 5.0, accepted
