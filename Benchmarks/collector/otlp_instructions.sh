#!/usr/bin/env bash
# Instructions per OTLP protobuf span in the collector (decode and memory store), counted by
# callgrind: 100 requests of 100 spans shaped as an OpenTelemetry SDK sends them (8 attributes,
# a parent, a scope), posted with curl. Counts repeat for the same binary, unlike timings.
#
#   Benchmarks/collector/otlp_instructions.sh [BINARY]    # default .build/release/meshtrace
#
# The request is built with the OpenTelemetry protobuf classes from the test venv
# (.build-venv, made by scripts/test).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build/release/meshtrace}
PY=.build-venv/bin/python
[ -x "$PY" ] || { echo "run scripts/test once first: it makes .build-venv with the OpenTelemetry protobuf classes" >&2; exit 1; }
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
T=$(mktemp -d)
"$PY" - "$T/body.bin" <<'PYTHON'
import random, sys
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
rng = random.Random(1)
req = ExportTraceServiceRequest()
rs = req.resource_spans.add()
rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="orders"))
rs.resource.attributes.add(key="host.name", value=AnyValue(string_value="node-1"))
ss = rs.scope_spans.add()
ss.scope.name, ss.scope.version = "opentelemetry.instrumentation.requests", "0.48b0"
for n in range(100):
    s = ss.spans.add()
    s.trace_id, s.span_id, s.parent_span_id = rng.randbytes(16), rng.randbytes(8), rng.randbytes(8)
    s.name, s.kind = "GET /orders/{id}", 3
    s.start_time_unix_nano = 1_700_000_000_000_000_000 + n
    s.end_time_unix_nano = s.start_time_unix_nano + 1_500_000
    for k, v in [("http.request.method", "GET"), ("url.full", f"http://orders:8080/orders/{n}?x=1"),
                 ("server.address", "orders"), ("network.protocol.version", "1.1"),
                 ("user_agent.original", "python-requests/2.32.3")]:
        s.attributes.add(key=k, value=AnyValue(string_value=v))
    for k, v in [("server.port", 8080), ("http.response.status_code", 200), ("http.response.body.size", 1024)]:
        s.attributes.add(key=k, value=AnyValue(int_value=v))
open(sys.argv[1], "wb").write(req.SerializeToString())
PYTHON
# valgrind 3.19 cannot read the DWARF 5 that Swift emits; symbols are enough for the counts.
strip -g "$BIN" -o "$T/meshtrace"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OTLP=$(port); QUERY=$(port)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/collector.cg" "$T/meshtrace" collector \
  --zipkin-port 0 --otlp-http-port "$OTLP" --otlp-grpc-port -1 --skywalking-port -1 --skywalking-http-port -1 --query-port "$QUERY" --admin-port 0 --storage memory --log-level warning \
  > "$T/collector.log" 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null; wait 2>/dev/null' EXIT
up=0
for _ in $(seq 1 150); do curl -s -o /dev/null "http://127.0.0.1:$QUERY/api/services" && { up=1; break; }; sleep 0.2; done
[ $up = 1 ] || { echo "collector did not come up: $T/collector.log" >&2; exit 1; }
post() { curl -s -o /dev/null -w "%{http_code}\n" -H 'Content-Type: application/x-protobuf' --data-binary @"$T/body.bin" "http://127.0.0.1:$OTLP/v1/traces"; }
post > /dev/null  # warm
echo "collector under callgrind: 100 OTLP protobuf requests of 100 spans..."
callgrind_control -i on "$VG" > /dev/null 2>&1
codes=$(for _ in $(seq 1 100); do post; done | sort | uniq -c | tr -s ' ')
callgrind_control -i off "$VG" > /dev/null 2>&1
kill -TERM "$VG"; wait "$VG"
trap - EXIT
echo "answers:$codes"
total=$(callgrind_annotate "$T/collector.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
decode=$(callgrind_annotate --inclusive=yes "$T/collector.cg" 2>/dev/null | awk '/OTLPProto.*decode/ { gsub(",", "", $1); print $1; exit }')
echo "collector: $((total / 10000)) instructions per span, of which OTLPProto.decode $((${decode:-0} / 10000))"
echo "profile: $T/collector.cg"
