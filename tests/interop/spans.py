"""Builders for raw Zipkin v2 / OTLP JSON bodies, for tests that need exact control of the wire."""
import random
import time


def rand_hex(rng, digits):
    while True:
        value = "".join(rng.choice("0123456789abcdef") for _ in range(digits))
        if set(value) != {"0"}:
            return value


def zipkin_span(rng, trace_id=None, parent=None, name="get /api", service="svc", duration=1500, **extra):
    span = {
        "traceId": trace_id or rand_hex(rng, 32),
        "id": rand_hex(rng, 16),
        "name": name,
        "kind": "SERVER",
        "timestamp": int(time.time() * 1_000_000),
        "duration": duration,
        "localEndpoint": {"serviceName": service, "ipv4": "127.0.0.1", "port": 8080},
        "tags": {"http.method": "GET", "http.path": "/api"},
    }
    if parent:
        span["parentId"] = parent
    span.update(extra)
    return span


def otlp_span(rng, trace_id=None, name="op", **extra):
    now = time.time_ns()
    span = {"traceId": trace_id or rand_hex(rng, 32), "spanId": rand_hex(rng, 16), "name": name, "kind": 2,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000_000)}
    span.update(extra)
    return span


def otlp_request(spans, service="svc"):
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}


def new_rng(seed=1234):
    return random.Random(seed)
