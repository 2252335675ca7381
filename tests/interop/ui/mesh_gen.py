"""A generated mesh of N services for the service graph's layout tests and paint timings:
a gateway fans out to a front tier, which calls a middle tier, which fans in to a few shared
stores (the shape tests/js/meshes.mjs gives the layout's unit tests), plus a call back up so the
graph has a cycle. Posted as OTLP/JSON, every call a client span and its server span."""
import random
import time

import requests


def _attr(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _hex(rng, digits):
    return "".join(rng.choice("0123456789abcdef") for _ in range(digits - 1)) + rng.choice("123456789abcdef")


def topology(n, seed=11):
    """(services, edges): service 0 is the gateway; every other service is called by someone."""
    rng = random.Random(seed)
    names = ["gateway"] + [f"svc-{i:02d}-{rng.choice(['orders', 'users', 'billing', 'search', 'stock', 'mail'])}" for i in range(1, n)]
    bounds = [1, max(2, round(n * 0.3)), max(3, round(n * 0.75)), n]
    tiers = [list(range(bounds[i - 1] if i else 0, bounds[i])) for i in range(4)]
    edges = set()
    for t in range(3):
        callers, callees = tiers[t], tiers[t + 1]
        for callee in callees:  # fan-in: everyone below has a caller
            edges.add((rng.choice(callers), callee))
        for caller in callers:  # fan-out: a few calls each
            for _ in range(rng.randint(1, 3)):
                edges.add((caller, rng.choice(callees)))
        if t + 2 < 4:
            for caller in callers:
                if rng.random() < 0.15:
                    edges.add((caller, rng.choice(tiers[t + 2])))
    edges.add((tiers[3][-1], tiers[2][0]))  # a call back up: a cycle
    return names, sorted(edges)


def post_service_mesh(otlp_url, n, seed=11):
    """Posts traffic over every edge of the mesh within the last minute. Returns
    {"services": names, "edges": {(a, b): (requests, failures)}}."""
    rng = random.Random(seed)
    names, edges = topology(n, seed)
    now = time.time_ns() - 30 * 1_000_000_000
    by_service = {}
    counts = {}
    for a, b in edges:
        calls = rng.choice([2, 5, 10, 30])
        failures = calls // 5 if rng.random() < 0.2 else 0
        counts[(names[a], names[b])] = (calls, failures)
        for i in range(calls):
            trace = _hex(rng, 32)
            start = now + rng.randrange(20_000) * 1_000_000
            status = 503 if i < failures else 200
            client, server = _hex(rng, 16), _hex(rng, 16)
            common = [_attr("http.method", "GET"), _attr("http.status_code", status)]
            by_service.setdefault(names[a], []).append({
                "traceId": trace, "spanId": client, "name": f"GET /{names[b]}", "kind": 3,
                "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 9_000_000),
                "attributes": common + [_attr("peer.service", names[b])],
                **({"status": {"code": 2}} if status >= 500 else {})})
            by_service.setdefault(names[b], []).append({
                "traceId": trace, "spanId": server, "parentSpanId": client, "name": f"GET /{names[b]}", "kind": 2,
                "startTimeUnixNano": str(start + 1_000_000), "endTimeUnixNano": str(start + 8_000_000),
                "attributes": common, **({"status": {"code": 2}} if status >= 500 else {})})
    for service, spans in by_service.items():
        resource = [_attr("service.name", service)] + ([_attr("meshtrace.proxy", "gateway")] if service == "gateway" else [])
        body = {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [{"scope": {"name": "mesh-gen"}, "spans": spans}]}]}
        r = requests.post(otlp_url, json=body, timeout=60)
        assert r.status_code == 200, r.text
    return {"services": names, "edges": counts}
