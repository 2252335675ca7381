"""Synthetic data for the web UI tests: a small mesh with one failing service, an XSS probe
and a 10,000-span trace, posted to the real collector as OTLP/JSON and Zipkin JSON."""
import random
import time

import requests

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
# Markup in a service name (a graph node, a search option, a chip) and in a tag key.
XSS_SERVICE = 'comments<img src=x onerror="window.__xss=3">'
XSS_KEY = '<img src=x onerror="window.__xss=4">.key'
SAMPLING_RATE = 0.1


def _hex(rng, digits):
    return "".join(rng.choice("0123456789abcdef") for _ in range(digits - 1)) + rng.choice("123456789abcdef")


def _attr(key, value):
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


class Mesh:
    """ingress (gateway) -> frontend -> orders (healthy), payments (30% 503: failure),
    reviews (15% 404: degraded) and an external API nobody reports for. Every span says
    sampling.rate = 0.1, so the graph must show ten times the spans it received."""

    REQUESTS = 40
    PAYMENT_FAILURES = 12  # 30%
    REVIEW_NOT_FOUND = 6  # 15%

    def __init__(self, seed=7):
        self.rng = random.Random(seed)
        self.by_service = {}  # service -> [otlp spans]
        self.traces = []  # [(trace_id, payment_failed, [span ids])]
        self.trace_spans = {}  # trace id -> [(span_id, service, name, parent)]

    def _span(self, trace, service, name, kind, start, dur_ms, parent=None, status=200, extra=None):
        sid = _hex(self.rng, 16)
        attrs = [_attr("http.method", "GET"), _attr("http.status_code", str(status)),
                 _attr("http.response.status_code", status), _attr("sampling.rate", SAMPLING_RATE),
                 _attr("component", "proxy")]
        for k, v in (extra or {}).items():
            attrs.append(_attr(k, v))
        span = {"traceId": trace, "spanId": sid, "name": name, "kind": kind,
                "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + int(dur_ms * 1e6)),
                "attributes": attrs}
        if parent:
            span["parentSpanId"] = parent
        if status >= 500:
            span["status"] = {"code": 2, "message": f"HTTP {status}"}
        self.by_service.setdefault(service, []).append(span)
        self.trace_spans.setdefault(trace, []).append((sid, service, name, parent))
        return sid

    def build(self):
        now = time.time_ns() - 40 * 1_000_000_000
        for i in range(self.REQUESTS):
            t = _hex(self.rng, 32)
            start = now + i * 500_000_000
            pay_fail = i < self.PAYMENT_FAILURES
            review_404 = self.PAYMENT_FAILURES <= i < self.PAYMENT_FAILURES + self.REVIEW_NOT_FOUND
            # The gateway's span, the trace's length, differs between traces (90-98 ms): sorting by
            # duration has something to order.
            g = self._span(t, "ingress", "GET /shop", 3, start, 90 + (i * 5) % 9, extra={"peer.service": "frontend"})
            f = self._span(t, "frontend", "GET /shop", 2, start + 1_000_000, 86, parent=g)
            c = self._span(t, "frontend", "GET /orders", 3, start + 2_000_000, 20 + i % 7, parent=f,
                           extra={"peer.service": "orders"})
            self._span(t, "orders", "GET /orders", 2, start + 3_000_000, 17 + i % 7, parent=c)
            c = self._span(t, "frontend", "POST /pay", 3, start + 25_000_000, 40, parent=f,
                           status=503 if pay_fail else 200, extra={"peer.service": "payments"})
            self._span(t, "payments", "POST /pay", 2, start + 26_000_000, 38, parent=c,
                       status=503 if pay_fail else 200)
            c = self._span(t, "frontend", "GET /reviews", 3, start + 66_000_000, 10, parent=f,
                           status=404 if review_404 else 200, extra={"peer.service": "reviews"})
            self._span(t, "reviews", "GET /reviews", 2, start + 67_000_000, 8, parent=c,
                       status=404 if review_404 else 200)
            self._span(t, "frontend", "GET /v1/charges", 3, start + 78_000_000, 6, parent=f,
                       extra={"peer.service": "api.stripe.example"})
            self.traces.append((t, pay_fail))
        return self

    def post(self, otlp_url):
        for service, spans in self.by_service.items():
            resource = [_attr("service.name", service)]
            if service == "ingress":
                resource.append(_attr("meshtrace.proxy", "gateway"))
            body = {"resourceSpans": [{"resource": {"attributes": resource},
                                       "scopeSpans": [{"scope": {"name": "ui-test"}, "spans": spans}]}]}
            r = requests.post(otlp_url, json=body, timeout=30)
            assert r.status_code == 200, r.text


def post_xss(zipkin_url, rng):
    """guestbook -> XSS_SERVICE, two minutes ago (inside the graph's 5 m window), with markup in
    a span name, a tag value and key, an annotation and a service name."""
    trace = _hex(rng, 32)
    now = int(time.time() * 1_000_000) - 2 * 60_000_000
    root, call = _hex(rng, 16), _hex(rng, 16)
    spans = [
        {"traceId": trace, "id": root, "name": "GET /comments", "kind": "SERVER", "timestamp": now - 5_000_000,
         "duration": 3000, "localEndpoint": {"serviceName": "guestbook"}, "tags": {"http.method": "GET"}},
        {"traceId": trace, "id": call, "parentId": root, "name": "render " + XSS, "kind": "CLIENT",
         "timestamp": now - 4_990_000, "duration": 1000, "localEndpoint": {"serviceName": "guestbook"},
         "remoteEndpoint": {"serviceName": XSS_SERVICE},
         "tags": {"comment.body": XSS, XSS_KEY: "v", "http.method": "GET"},
         "annotations": [{"timestamp": now - 4_989_000, "value": "saw " + XSS}]},
        {"traceId": trace, "id": _hex(rng, 16), "parentId": call, "name": "GET /list", "kind": "SERVER",
         "timestamp": now - 4_980_000, "duration": 800, "localEndpoint": {"serviceName": XSS_SERVICE},
         "tags": {"http.method": "GET", "http.status_code": "200"}},
    ]
    r = requests.post(zipkin_url, json=spans, timeout=30)
    assert r.status_code == 202, r.text
    return trace


def post_big_trace(zipkin_url, rng, count=10_000, services=8):
    """One trace of `count` spans: a root, 100 handlers under it, each with a chain and fan-out."""
    trace = _hex(rng, 32)
    base = int(time.time() * 1_000_000) - 20 * 60_000_000  # outside the graph's 5 m window
    names = [f"svc-{i}" for i in range(services)]
    spans = []
    root = _hex(rng, 16)
    spans.append({"traceId": trace, "id": root, "name": "GET /big", "kind": "SERVER", "timestamp": base,
                  "duration": 5_000_000, "localEndpoint": {"serviceName": names[0]}})
    parents = [(root, base, 5_000_000)]
    i = 1
    while i < count:
        parent_id, p_start, p_dur = parents[rng.randrange(len(parents))] if len(parents) > 1 and i > 100 \
            else parents[0]
        start = p_start + rng.randrange(max(1, p_dur // 2))
        dur = max(50, rng.randrange(max(2, (p_start + p_dur - start))))
        sid = _hex(rng, 16)
        span = {"traceId": trace, "id": sid, "parentId": parent_id, "name": f"op-{i % 37}",
                "kind": "CLIENT" if i % 2 else "SERVER", "timestamp": start, "duration": dur,
                "localEndpoint": {"serviceName": names[i % services]}, "tags": {"i": str(i)}}
        if i % 97 == 0:
            span["tags"]["error"] = "true"
        spans.append(span)
        parents.append((sid, start, dur))
        i += 1
    for chunk in range(0, len(spans), 2500):
        r = requests.post(zipkin_url, json=spans[chunk:chunk + 2500], timeout=60)
        assert r.status_code == 202, r.text
    return trace, spans
