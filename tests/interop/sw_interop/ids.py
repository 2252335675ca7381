"""SkyWalking ids mapped onto meshtrace's, written again from the README's description (FNV-1a 64
and SplitMix64), independently of the Swift code: what the tests expect the collector and the
sidecar to have computed."""
import base64

MASK = (1 << 64) - 1
HEX = set("0123456789abcdef")


def _fnv(data, basis):
    h = basis
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & MASK
    return h


def _mix(value):
    z = (value + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def trace_id(sw):
    """32 hex digits, as the Jaeger API prints a 128-bit id."""
    if len(sw) == 32 and set(sw) <= HEX and int(sw, 16) != 0:
        return sw
    data = sw.encode()
    high, low = _mix(_fnv(data, 0xCBF29CE484222325)), _mix(_fnv(data, 0x84222325CBF29CE4))
    if high == 0 and low == 0:
        low = 1
    return format(high, "016x") + format(low, "016x")


def span_id(segment, index):
    if index == 0 and len(segment) == 16 and set(segment) <= HEX and int(segment, 16) != 0:
        return segment
    h = _fnv(segment.encode(), 0x6C62272E07BB0142)
    h = _fnv(b"-", h)
    h = _fnv(str(index).encode(), h)
    return format(_mix(h) or 1, "016x")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def sw8(trace, segment, index, service="client", instance="client-1", endpoint="/", target="gateway:80", sampled=True):
    return "-".join(["1" if sampled else "0", b64(trace), b64(segment), str(index), b64(service), b64(instance), b64(endpoint), b64(target)])


def parse_sw8(value):
    parts = value.split("-")
    assert len(parts) == 8, value
    dec = [base64.b64decode(p).decode() for p in parts[1:3]] + [parts[3]] + [base64.b64decode(p).decode() for p in parts[4:]]
    return {"sampled": parts[0], "trace": dec[0], "segment": dec[1], "index": int(dec[2]), "service": dec[3], "instance": dec[4],
            "endpoint": dec[5], "target": dec[6]}
