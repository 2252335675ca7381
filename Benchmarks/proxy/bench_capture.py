#!/usr/bin/env python3
"""Transparent capture against proxy mode, side by side in one run (root; release build).

Two pods (network namespaces on a bridge, as in tests/interop/test_capture_netns.py): a client
pod running wrk and hey, and a server pod running nginx (1 KiB). Each pod has a sidecar with the
capture rules installed and, in the same process, proxy mode's listeners. The same requests then
take three paths, interleaved round by round:

- direct: client pod -> nginx on an excluded port (no sidecar; the limit);
- proxy mode: the client's outbound forward-proxy listener (Host: server, as with HTTP_PROXY)
  -> the server's plain inbound listener -> nginx: how `meshtrace up` runs today;
- captured: client -> http://10.77.0.3:80 as if no mesh existed; iptables sends it through the
  client's outbound capture listener and the server's inbound capture listener.

Both meshed paths cross two sidecar hops and make the same spans (100% sampling, exported to
a discard sink). Reports throughput (wrk), latency at a fixed rate (hey), added latency over
direct, and sidecar CPU-seconds per 1000 requests (both sidecars). Everything runs in
namespaces the script makes and removes.
"""
import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))

import bench_proxy  # noqa: E402  (shared measuring helpers)
from capture import netns  # noqa: E402  (the pods)
from sidecar.procs import Proc  # noqa: E402

SERVER_PORT, DIRECT_PORT, PLAIN_INBOUND, PLAIN_OUTBOUND = 80, 8081, 15007, 15002


def nginx_conf(tmp, name, listen, body):
    path = os.path.join(tmp, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {tmp}/{name}.pid; error_log {tmp}/{name}-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; client_max_body_size 64m; client_body_buffer_size 4m;
  server {{ {listen} {body} }} }}
""")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "meshtrace-sidecar"))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    reason = netns.available()
    if reason:
        sys.exit(f"bench-capture {reason}")
    netns.sweep_stale()
    tmp = tempfile.mkdtemp(prefix="meshtrace-bench-capture-")
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "1k"), "wb") as f:
        f.write(b"x" * 1024)
    binary = netns.proxy_binary(args.binary)
    pods = netns.Pods()
    try:
        client = pods.add("client", 2, hosts={"server": f"{netns.SUBNET}.3"})
        server = pods.add("server", 3)
        # A discard sink for spans, so both meshed paths pay for their spans and nothing else.
        sink = pods.track(Proc(pods.switch_command("nginx", "-c", nginx_conf(tmp, "sink", f"listen {netns.SUBNET}.1:9411;", "location / { return 202; }"), "-p", tmp)))
        app = pods.track(Proc(server.command("nginx", "-c", nginx_conf(
            tmp, "app", f"listen {SERVER_PORT}; listen {DIRECT_PORT};", f"location / {{ root {tmp}; try_files /1k =404; default_type text/plain; }}"), "-p", tmp)))
        # info: the listening line is how the script knows a sidecar is up (nothing is logged per request).
        common = ["--sampling", "100", "--collector", f"http://{netns.SUBNET}.1:9411/api/v2/spans", "--log-level", "info",
                  "--host", "0.0.0.0"]
        # Server: capture, plus proxy mode's inbound listener in front of the same nginx.
        server.sh(binary, "iptables", "--exclude-inbound-ports", f"15000,15021,15090,{PLAIN_INBOUND},{DIRECT_PORT}")
        server_sc = pods.track(Proc(server.command(
            binary, "--capture", "--service", "server", "--inbound-port", str(PLAIN_INBOUND), "--app-port", str(SERVER_PORT),
            "--app-host", "127.0.0.1", *common, uid=netns.PROXY_UID), env=netns.clean_env()))
        server_sc.wait_for("meshtrace sidecar listening")
        # Client: capture, plus proxy mode's outbound listener (what HTTP_PROXY points at).
        client.sh(binary, "iptables", "--exclude-outbound-ports", str(DIRECT_PORT))
        client_sc = pods.track(Proc(client.command(
            binary, "--capture", "--service", "client", "--outbound-port", str(PLAIN_OUTBOUND),
            "--upstream", f"server={server.ip}:{PLAIN_INBOUND}", *common, uid=netns.PROXY_UID), env=netns.clean_env()))
        client_sc.wait_for("meshtrace sidecar listening")
        sidecars = [server_sc.proc.pid, client_sc.proc.pid]
        paths = [
            ("direct (limit)", f"http://{server.ip}:{DIRECT_PORT}/", None, []),
            ("proxy mode (outbound + inbound listener)", f"http://127.0.0.1:{PLAIN_OUTBOUND}/", "server", sidecars),
            ("captured (outbound + inbound capture)", f"http://{server.ip}:{SERVER_PORT}/", None, sidecars),
        ]
        for name, url, host, _ in paths:
            out = client.sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *(["-H", f"Host: {host}"] if host else []), url).stdout
            if out != "200":
                raise RuntimeError(f"{name}: {url} answered {out}")
        print(f"machine: {os.cpu_count()} cores; wrk -t2 -c{args.connections} -d{args.duration}s; hey at {args.rate} rps for "
              f"{args.duration}s; 1 KiB responses, keep-alive; {args.rounds} interleaved rounds, medians", flush=True)

        def wrk(url, host, duration):
            cmd = client.command("wrk", "-t2", f"-c{args.connections}", f"-d{duration}s", "--latency",
                                 *(["-H", f"Host: {host}"] if host else []), url)
            return bench_proxy.parse_wrk(netns.sh(*cmd, timeout=duration + 60).stdout)

        def hey(url, host):
            workers = 10
            cmd = client.command("hey", "-z", f"{args.duration}s", "-c", str(workers), "-q", str(args.rate / workers),
                                 *(["-host", host] if host else []), url)
            return bench_proxy.parse_hey(netns.sh(*cmd, timeout=args.duration + 60).stdout)

        rounds = []
        for n in range(1, args.rounds + 1):
            print(f"round {n} of {args.rounds}", flush=True)
            this = {}
            for name, url, host, pids in paths:
                wrk(url, host, 2)  # warm-up
                rps, errors = wrk(url, host, args.duration)
                time.sleep(1)  # the saturated run's span backlog drains to the sink
                cpu0 = bench_proxy.cpu_seconds(pids) if pids else 0
                p50, p99, total = hey(url, host)
                cpu = (bench_proxy.cpu_seconds(pids) - cpu0) if pids else 0
                this[name] = dict(rps=rps, errors=errors, p50=p50, p99=p99, cpu_per_1k=cpu / max(total, 1) * 1000,
                                  rss=bench_proxy.rss_mb(pids) if pids else 0)
                r = this[name]
                print(f"  {name}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                      f"{r['cpu_per_1k']:.3f} CPU-s/1000", flush=True)
            rounds.append(this)

        def median(values):
            v = sorted(values)
            return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

        direct, proxy = paths[0][0], paths[1][0]
        print(f"\n| path | req/s (wrk) | vs direct | vs proxy mode | p50 ms @{args.rate} rps | p99 ms | added p50 | added p99 | "
              "sidecar CPU-s / 1000 req (both) | sidecars' RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, *_ in paths:
            per = [r[name] for r in rounds]
            m = {k: median([p[k] for p in per]) for k in ("rps", "p50", "p99", "cpu_per_1k", "rss")}
            vs_direct = median([r[name]["rps"] / r[direct]["rps"] for r in rounds])
            vs_proxy = median([r[name]["rps"] / r[proxy]["rps"] for r in rounds])
            added50 = median([r[name]["p50"] - r[direct]["p50"] for r in rounds])
            added99 = median([r[name]["p99"] - r[direct]["p99"] for r in rounds])
            print(f"| {name} | {m['rps']:.0f} | {vs_direct:.2f} | {vs_proxy:.2f} | {m['p50']:.2f} | {m['p99']:.2f} | "
                  f"{added50:+.2f} | {added99:+.2f} | {m['cpu_per_1k']:.3f} | {m['rss']:.1f} |")
        errors = {name: sum(r[name]["errors"] for r in rounds) for name, *_ in paths}
        if any(errors.values()):
            print("non-2xx responses:", errors)
    finally:
        pods.close()
        left = pods.leftovers()
        if left:
            print(f"left behind: {left}", file=sys.stderr)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
