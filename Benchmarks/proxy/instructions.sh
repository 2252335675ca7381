#!/usr/bin/env bash
# Instructions per proxied request in the sidecar, and per ingested span in the collector,
# counted by valgrind's callgrind: unlike timings these repeat exactly for the same binary and
# load, whatever else the machine is doing, so a change's effect shows even on a noisy box.
#
#   Benchmarks/proxy/instructions.sh [BINARY] [REQUESTS]
#
# BINARY defaults to the release build. The sidecar-only meshtrace-sidecar works too; the collector
# half then runs from COLLECTOR_BIN (default .build/release/meshtrace). REQUESTS defaults to 3000
# (hey, 8 connections, 1 KiB responses from nginx, 100% sampling). SAMPLING=0 shows the proxying
# alone; EXPORTER=zipkin-proto exports proto3 instead of JSON, EXPORTER=otlp OTLP protobuf (to the
# collector's OTLP port), EXPORTER=otlp-grpc OTLP/gRPC (the sidecar's half then exports to a
# native collector with memory storage instead of nginx, as nginx does not answer gRPC).
# SIDECAR_ARGS adds flags to the measured sidecar (e.g. "--max-span-names 0").
# Writes sidecar.cg and collector.cg
# (open with callgrind_annotate) in a temp dir it names at the end.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build/release/meshtrace}
N=${2:-3000}
SAMPLING=${SAMPLING:-100}
EXPORTER=${EXPORTER:-zipkin}   # or zipkin-proto (the same spans as proto3), otlp or otlp-grpc
COLLECTOR_BIN=${COLLECTOR_BIN:-.build/release/meshtrace}
SIDECAR_CMD=(sidecar)   # the all-in-one binary's subcommand; meshtrace-sidecar takes the flags directly
case "$(basename "$BIN")" in meshtrace-sidecar*) SIDECAR_CMD=() ;; *) COLLECTOR_BIN=$BIN ;; esac
for tool in valgrind nginx hey curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nginx-light hey curl >/dev/null; break; }
done
T=$(mktemp -d)
chmod 755 "$T"  # nginx's workers run as nobody and must read the 1 KiB file (mktemp -d is 0700: 404s)
# valgrind 3.19 cannot read the DWARF 5 that Swift emits; symbols are enough for the counts.
strip -g "$BIN" -o "$T/meshtrace"
strip -g "$COLLECTOR_BIN" -o "$T/collector"
head -c 1024 /dev/zero | tr '\0' x > "$T/1k"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APP=$(port); SINK=$(port); SC=$(port); ZIP=$(port); QUERY=$(port); SC2=$(port); OTLP=$(port); GRPC=$(port); GSINK=$(port)
INGEST="http://127.0.0.1:$ZIP/api/v2/spans"
SINK_URL="http://127.0.0.1:$SINK/api/v2/spans"
[ "$EXPORTER" = otlp ] && INGEST="http://127.0.0.1:$OTLP/v1/traces"
[ "$EXPORTER" = otlp-grpc ] && INGEST="grpc://127.0.0.1:$GRPC" && SINK_URL="grpc://127.0.0.1:$GSINK"
cat > "$T/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $T/nginx.pid; error_log $T/nginx-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$APP; location / { root $T; try_files /1k =404; default_type text/plain; } }
  server { listen 127.0.0.1:$SINK; client_max_body_size 64m; client_body_buffer_size 4m; location / { return 202; } } }
CONF
nginx -c "$T/nginx.conf" -p "$T" & NGINX=$!
GSINK_PID=
if [ "$EXPORTER" = otlp-grpc ]; then
  "$COLLECTOR_BIN" collector --zipkin-port 0 --otlp-http-port 0 --otlp-grpc-port "$GSINK" --skywalking-port -1 --skywalking-http-port -1 --query-port 0 --admin-port 0 \
    --storage memory --log-level warning > "$T/gsink.log" 2>&1 & GSINK_PID=$!
fi
trap 'kill $NGINX $GSINK_PID 2>/dev/null; wait 2>/dev/null' EXIT

wait_up() {  # URL: bounded poll until it answers
  # UP_TRIES (default 150, 30 s): a valgrind start on a loaded machine can take minutes.
  for _ in $(seq 1 "${UP_TRIES:-150}"); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "$1 did not come up" >&2; exit 1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_idle() {  # PID: bounded poll until it has used no CPU for half a second
  local last now still=0
  last=$(ticks "$1")
  for _ in $(seq 1 240); do
    sleep 0.25; now=$(ticks "$1")
    if [ "$now" = "$last" ]; then still=$((still + 1)); [ $still -ge 2 ] && return 0; else still=0; fi
    last=$now
  done
}
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'; }

echo "sidecar under callgrind (sampling $SAMPLING%, spans to a discard sink), $N requests..."
valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no --callgrind-out-file="$T/sidecar.cg" "$T/meshtrace" "${SIDECAR_CMD[@]}" --service app \
  --inbound-port "$SC" --app-port "$APP" --outbound-port 0 --metrics-port 0 --admin-port 0 --sampling "$SAMPLING" \
  --collector "$SINK_URL" --exporter "$EXPORTER" --log-level warning ${SIDECAR_ARGS:-} > "$T/sidecar.log" 2>&1 &
VG=$!
wait_up "http://127.0.0.1:$SC/"
hey -n 200 -c 8 "http://127.0.0.1:$SC/" > /dev/null  # warm: connections, pools, caches
callgrind_control -i on "$VG" > /dev/null 2>&1
# Every request must be a 200 from nginx: a 404 (unreadable file) is proxied and traced too,
# with a 153-byte body, and the count would silently measure that instead.
all_ok() {  # hey's output on stdin: prints the rate, fails unless all N answers were 200
  local out; out=$(cat)
  grep -E "Requests/sec" <<< "$out"
  grep -qE "\[200\][[:space:]]+$N responses" <<< "$out" || { echo "not every answer was 200:" >&2; grep -A5 'Status code' <<< "$out" >&2; exit 1; }
}
hey -n "$N" -c 8 "http://127.0.0.1:$SC/" | all_ok || { kill -9 "$VG"; exit 1; }
callgrind_control -i off "$VG" > /dev/null 2>&1
kill -TERM "$VG"; wait "$VG"
# One profile per thread: the event loop's share is what bounds a single-loop sidecar.
S=0; LOOP=0
for f in "$T"/sidecar.cg-*; do
  t=$(total "$f"); [[ $t =~ ^[0-9]+$ ]] || t=0
  S=$((S + t)); [ "$t" -gt "$LOOP" ] && LOOP=$t
done
echo "sidecar: $S instructions, $((S / N)) per request (all threads: proxying, span encoding, export)"
echo "  of which the busiest thread (the event loop): $((LOOP / N)) per request"

echo "collector under callgrind (memory storage), spans from a native sidecar, $N requests..."
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/collector.cg" "$T/collector" collector \
  --zipkin-port "$ZIP" --otlp-http-port "$OTLP" --otlp-grpc-port "$GRPC" --skywalking-port -1 --skywalking-http-port -1 --query-port "$QUERY" --admin-port 0 --storage memory --log-level warning \
  > "$T/collector.log" 2>&1 &
COL=$!
wait_up "http://127.0.0.1:$QUERY/api/services"
"$BIN" "${SIDECAR_CMD[@]}" --service app --inbound-port "$SC2" --app-port "$APP" --outbound-port 0 --metrics-port 0 --admin-port 0 \
  --sampling 100 --collector "$INGEST" --exporter "$EXPORTER" --log-level warning > "$T/sidecar2.log" 2>&1 &
SIDECAR=$!
wait_up "http://127.0.0.1:$SC2/"
wait_idle "$COL"
callgrind_control -i on "$COL" > /dev/null 2>&1
hey -n "$N" -c 8 "http://127.0.0.1:$SC2/" | all_ok || { kill -9 "$SIDECAR" "$COL"; exit 1; }
kill -TERM "$SIDECAR"; wait "$SIDECAR"  # SIGTERM flushes every buffered span
wait_idle "$COL"                        # and the collector has decoded and stored them
callgrind_control -i off "$COL" > /dev/null 2>&1
kill -TERM "$COL"; wait "$COL"
C=$(total "$T/collector.cg")
echo "collector: $C instructions, $((C / N)) per span ($EXPORTER, decode, memory store)"
echo "profiles: $T/sidecar.cg $T/collector.cg"
