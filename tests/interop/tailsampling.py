"""Helpers for the tail-sampling interop tests: an independent implementation of the
`probabilistic` policy's choice (OpenTelemetry's FNV-1a over salt + trace id, threshold from a
64-bit big.Float product, here with exact fractions), binomial bounds, and /metrics reading."""
import math
import re
from fractions import Fraction

import requests

DEFAULT_SALT = b"default-hash-seed"


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def threshold(percentage):
    """Go: big.Float(MaxUint64) * ratio at 64-bit precision (nearest even), truncated."""
    ratio = percentage / 100.0
    if ratio <= 0:
        return 0
    if ratio >= 1:
        return 2**64 - 1
    exact = Fraction(2**64 - 1) * Fraction(ratio)
    exponent = 0
    v = exact
    while v >= 2**64:
        v /= 2
        exponent += 1
    while v < 2**63:
        v *= 2
        exponent -= 1
    whole = math.floor(v)
    rest = v - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    return math.floor(Fraction(whole) * Fraction(2) ** exponent)


def probabilistic_keeps(trace_id_hex, percentage, salt=DEFAULT_SALT):
    return fnv1a64(salt + bytes.fromhex(trace_id_hex.rjust(32, "0"))) <= threshold(percentage)


def binomial_bounds(n, p, sds=4.0):
    """Mean +- `sds` standard deviations of Binomial(n, p): the tolerance the tests state."""
    mean = n * p
    sd = math.sqrt(n * p * (1 - p))
    return mean - sds * sd, mean + sds * sd


def metrics_text(admin_url):
    r = requests.get(admin_url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def metric_sum(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    # Label values may hold braces (a span named "GET /api/reports/{id}"): skip quoted strings.
    pattern = re.compile(r"^" + re.escape(name) + r'(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+([0-9.eE+-]+)$')
    for line in text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total
