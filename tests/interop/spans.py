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


def mutate(body, rng):
    """One random edit of a valid body: a byte changed, bytes inserted, deleted or repeated, or
    the end cut off. Most land in a length, a tag or an id, as a broken sender's would."""
    b = bytearray(body)
    edit = rng.randrange(5)
    at = rng.randrange(len(b))
    if edit == 0:
        b[at] = rng.randrange(256)
    elif edit == 1:
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    elif edit == 2:
        del b[at:at + rng.randint(1, 4)]
    elif edit == 3:
        b[at:at] = b[at:at + rng.randint(1, 8)]
    else:
        del b[at:]
    return bytes(b)
