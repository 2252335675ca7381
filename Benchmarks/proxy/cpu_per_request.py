#!/usr/bin/env python3
"""Where the CPU goes per proxied request: CPU-seconds of every process (the upstream app, the
proxy, the span sink, wrk itself) over one saturated wrk run, divided by the requests served.
Compares the sidecar with tracing on (100% sampling, spans to a discard sink, and to a real
meshtrace collector as in the side-by-side benchmark), the same sidecar with sampling 0, and nginx
as the same reverse proxy, alternating; the proxy's CPU is split into user and system (kernel)
time, since on loopback the kernel's TCP work is most of any proxy's cost.

    python3 Benchmarks/proxy/cpu_per_request.py [--binary PATH] [--rounds N] [--duration S]

Everything listens on 127.0.0.1 on free ports; every process is stopped at the end.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

# The same process and port helpers as the side-by-side benchmark next to this file.
from bench_proxy import ROOT, children, cpu_seconds, cpu_split, free_port, wait_http


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "meshtrace"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=6)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="meshtrace-cpu-")
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    app, sink, traced, quiet, nginx_port = free_port(), free_port(), free_port(), free_port(), free_port()
    collected, zipkin, query = free_port(), free_port(), free_port()
    with open(os.path.join(tmp, "app.conf"), "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {tmp}/app.pid; error_log {tmp}/app.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{app}; location / {{ root {tmp}; try_files /1k =404; default_type text/plain; }} }} }}
""")
    with open(os.path.join(tmp, "proxy.conf"), "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {tmp}/proxy.pid; error_log {tmp}/proxy.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{app}; keepalive 64; }}
  server {{ listen 127.0.0.1:{nginx_port}; location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    with open(os.path.join(tmp, "sink.conf"), "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {tmp}/sink.pid; error_log {tmp}/sink.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_max_body_size 64m; client_body_buffer_size 4m;
  server {{ listen 127.0.0.1:{sink}; location / {{ return 202; }} }} }}
""")
    common = ["sidecar", "--service", "app", "--app-port", str(app), "--outbound-port", "0", "--metrics-port", "0",
              "--admin-port", "0", "--log-level", "warning"]
    procs = {
        "app (nginx)": subprocess.Popen(["nginx", "-c", f"{tmp}/app.conf", "-p", tmp]),
        "span sink (nginx)": subprocess.Popen(["nginx", "-c", f"{tmp}/sink.conf", "-p", tmp]),
        "collector": subprocess.Popen([args.binary, "collector", "--zipkin-port", str(zipkin), "--otlp-http-port", "0", "--otlp-grpc-port", "-1", "--skywalking-port", "-1", "--skywalking-http-port", "-1",
                                       "--query-port", str(query), "--admin-port", "0", "--storage", "memory",
                                       "--log-level", "warning"]),
    }
    proxies = {
        "tracing on (100%, discard sink)": (traced, subprocess.Popen(
            [args.binary] + common + ["--inbound-port", str(traced), "--sampling", "100",
                                      "--collector", f"http://127.0.0.1:{sink}/api/v2/spans"])),
        "tracing on (100%, real collector)": (collected, subprocess.Popen(
            [args.binary] + common + ["--inbound-port", str(collected), "--sampling", "100",
                                      "--collector", f"http://127.0.0.1:{zipkin}/api/v2/spans"])),
        "sampling 0": (quiet, subprocess.Popen(
            [args.binary] + common + ["--inbound-port", str(quiet), "--sampling", "0", "--exporter", "none"])),
        "nginx as the proxy": (nginx_port, subprocess.Popen(["nginx", "-c", f"{tmp}/proxy.conf", "-p", tmp])),
    }
    try:
        for port in (app, traced, collected, quiet, nginx_port):
            wait_http(f"http://127.0.0.1:{port}/")
        wait_http(f"http://127.0.0.1:{query}/api/services")
        wait_http(f"http://127.0.0.1:{sink}/")
        print(f"wrk -t2 -c32 -d{args.duration}s per run, {args.rounds} rounds; CPU µs per request by process")
        for n in range(1, args.rounds + 1):
            for label, (port, proxy) in proxies.items():
                watched = {name: [p.pid] + children(p.pid) for name, p in procs.items()}
                watched["proxy"] = [proxy.pid] + children(proxy.pid)  # nginx: master and worker
                before = {k: cpu_seconds(v) for k, v in watched.items()}
                proxy_before = cpu_split(watched["proxy"])
                run = subprocess.run(["bash", "-c", f"time -p wrk -t2 -c32 -d{args.duration}s http://127.0.0.1:{port}/"],
                                     capture_output=True, text=True, check=True)
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", run.stdout).group(1))
                wrk_cpu = sum(float(x) for x in re.findall(r"^(?:user|sys) ([\d.]+)", run.stderr, re.M))
                time.sleep(1.5)  # the sidecar's export drains: its CPU belongs to these requests
                after = {k: cpu_seconds(v) for k, v in watched.items()}
                proxy_after = cpu_split(watched["proxy"])
                served = rps * args.duration
                parts = {k: (after[k] - before[k]) / served * 1e6 for k in before}
                parts["wrk"] = wrk_cpu / served * 1e6
                user, system = ((a - b) / served * 1e6 for a, b in zip(proxy_after, proxy_before))
                shown = ", ".join(f"{k} {v:.1f}" + (f" (user {user:.1f} + kernel {system:.1f})" if k == "proxy" else "")
                                  for k, v in parts.items() if v >= 0.05)
                print(f"  round {n}, {label}: {rps:.0f} req/s; {shown}; total {sum(parts.values()):.1f}", flush=True)
                time.sleep(1)
    finally:
        for p in list(procs.values()) + [s for _, s in proxies.values()]:
            p.send_signal(signal.SIGTERM)
        for p in list(procs.values()) + [s for _, s in proxies.values()]:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
