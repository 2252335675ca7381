#!/usr/bin/env python3
"""Sidecar proxy benchmark: the same upstream (nginx serving 1 KiB) reached directly, through
the sidecar (`meshtrace-sidecar`, the sidecar-only binary: inbound listener, 100% sampling, spans
exported to a running collector; one row runs the same from the all-in-one `meshtrace sidecar`),
through nginx as a reverse proxy and through haproxy, all with keep-alive, side by side in one run.

Reports throughput (wrk) and its ratio to each peer, latency at a fixed 1000 rps (hey), the
latency each proxy adds over the direct connection, CPU-seconds per 1000 requests and RSS.
Everything listens on 127.0.0.1; every process is stopped at the end.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def cpu_split(pids):
    """User and system CPU-seconds of the processes so far."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11])  # utime
        system += int(fields[12])  # stime
    return user / TICKS, system / TICKS


def cpu_seconds(pids):
    return sum(cpu_split(pids))


def rss_mb(pids, key="VmRSS"):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total / 1024


def wait_quiet(pid, timeout=90):
    """Waits until `pid` (the collector) has used no CPU for half a second: a sidecar that was
    just saturated still exports its backlog of spans for a while, and that work must not land in
    the next measurement window. Bounded: gives up after `timeout` seconds and says so."""
    deadline = time.monotonic() + timeout
    last, still = cpu_seconds([pid]), 0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds([pid])
        still = still + 1 if now == last else 0
        if still >= 2:
            return
        last = now
    print(f"  (collector still busy after {timeout}s; measuring anyway)", flush=True)


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def run_wrk(url, duration, connections):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def parse_wrk(out):
    """(requests/s, non-2xx responses) from wrk's report."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(errors.group(1)) if errors else 0


def run_hey(url, duration, rate, workers=10):
    out = subprocess.run(["hey", "-z", f"{duration}s", "-c", str(workers), "-q", str(rate / workers), url],
                         capture_output=True, text=True, check=True).stdout
    return parse_hey(out)


def parse_hey(out):
    """(p50 ms, p99 ms, 200 responses) from hey's report."""
    def pct(p):
        m = re.search(rf"\s{p}% in ([\d.]+) secs", out)
        return float(m.group(1)) * 1000 if m else float("nan")
    total = int(re.search(r"\[200\]\s+(\d+) responses", out).group(1))
    return pct(50), pct(99), total


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "meshtrace"),
                    help="the all-in-one binary: the collector, and one sidecar row for comparison")
    ap.add_argument("--sidecar-binary", default=os.path.join(ROOT, ".build", "release", "meshtrace-sidecar"),
                    help="the sidecar-only binary, as deployed beside an app: every other sidecar row")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3,
                    help="measure every path this many times, interleaved, and report medians: on a shared "
                         "machine a single 10 s window moves by 10-20%% from one minute to the next")
    args = ap.parse_args()
    for tool in ("nginx", "haproxy", "wrk", "hey"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install nginx-light haproxy wrk hey")

    tmp = tempfile.mkdtemp(prefix="meshtrace-bench-proxy-")
    os.chmod(tmp, 0o755)  # nginx workers run unprivileged and must read the 1 KiB file
    procs = []

    def start(cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        procs.append(p)
        return p

    try:
        with open(os.path.join(tmp, "1k"), "wb") as f:
            f.write(b"x" * 1024)
        app_port, ngx_port, hap_port, sc_port = free_port(), free_port(), free_port(), free_port()
        # The upstream application: nginx serving the 1 KiB body.
        app_conf = os.path.join(tmp, "app.conf")
        with open(app_conf, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {tmp}/app.pid; error_log {tmp}/app-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{app_port}; location / {{ root {tmp}; try_files /1k =404; default_type text/plain; }} }} }}
""")
        start(["nginx", "-c", app_conf, "-p", tmp])
        # nginx as an equivalent reverse proxy: one worker, upstream keep-alive.
        ngx_conf = os.path.join(tmp, "proxy.conf")
        with open(ngx_conf, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {tmp}/proxy.pid; error_log {tmp}/proxy-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{ngx_port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
        ngx = start(["nginx", "-c", ngx_conf, "-p", tmp])
        hap_conf = os.path.join(tmp, "haproxy.cfg")
        with open(hap_conf, "w") as f:
            f.write(f"""global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:{hap_port}
  default_backend app
backend app
  server app1 127.0.0.1:{app_port}
""")
        hap = start(["haproxy", "-f", hap_conf, "-db"])
        # A discard sink that accepts span batches (202) and does nothing with them: the sidecar
        # exporting there shows the proxy's own cost, without the collector's ingestion competing
        # for the same two cores.
        sink_port = free_port()
        sink_conf = os.path.join(tmp, "sink.conf")
        with open(sink_conf, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {tmp}/sink.pid; error_log {tmp}/sink-error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_max_body_size 64m; client_body_buffer_size 4m;
  server {{ listen 127.0.0.1:{sink_port}; location / {{ return 202; }} }} }}
""")
        start(["nginx", "-c", sink_conf, "-p", tmp])
        collector = start([args.binary, "collector", "--zipkin-port", "0", "--otlp-http-port", "0", "--otlp-grpc-port", "-1", "--skywalking-port", "-1", "--skywalking-http-port", "-1", "--query-port", "0",
                           "--admin-port", "0", "--storage", "memory", "--log-level", "info"])
        zipkin_port = None
        deadline = time.monotonic() + 30
        while zipkin_port is None and time.monotonic() < deadline:
            line = collector.stdout.readline()
            m = re.search(r"zipkin=http://127\.0\.0\.1:(\d+)", line)
            if m:
                zipkin_port = int(m.group(1))
        if zipkin_port is None:
            raise RuntimeError("collector did not start")
        sidecar = start([args.sidecar_binary, "--service", "app", "--inbound-port", str(sc_port), "--app-port", str(app_port),
                         "--outbound-port", "0", "--metrics-port", "0", "--admin-port", "0", "--sampling", "100",
                         "--collector", f"http://127.0.0.1:{zipkin_port}/api/v2/spans", "--log-level", "warning"])
        two_port = free_port()
        two = start([args.sidecar_binary, "--service", "app", "--inbound-port", str(two_port), "--app-port", str(app_port),
                     "--outbound-port", "0", "--metrics-port", "0", "--admin-port", "0", "--sampling", "100", "--threads", "2",
                     "--collector", f"http://127.0.0.1:{zipkin_port}/api/v2/spans", "--log-level", "warning"])
        sink_sc_port = free_port()
        sink_sc = start([args.sidecar_binary, "--service", "app", "--inbound-port", str(sink_sc_port), "--app-port", str(app_port),
                         "--outbound-port", "0", "--metrics-port", "0", "--admin-port", "0", "--sampling", "100",
                         "--collector", f"http://127.0.0.1:{sink_port}/api/v2/spans", "--log-level", "warning"])
        # The same proxy with tracing off (sampling 0, metrics still on): what the spans cost.
        quiet_port = free_port()
        quiet = start([args.sidecar_binary, "--service", "app", "--inbound-port", str(quiet_port), "--app-port", str(app_port),
                       "--outbound-port", "0", "--metrics-port", "0", "--admin-port", "0", "--sampling", "0",
                       "--exporter", "none", "--log-level", "warning"])
        # The same sidecar as `meshtrace sidecar` from the all-in-one binary (what `meshtrace up`
        # runs in-process): the same code, more resident memory.
        whole_port = free_port()
        whole = start([args.binary, "sidecar", "--service", "app", "--inbound-port", str(whole_port), "--app-port", str(app_port),
                       "--outbound-port", "0", "--metrics-port", "0", "--admin-port", "0", "--sampling", "100",
                       "--collector", f"http://127.0.0.1:{zipkin_port}/api/v2/spans", "--log-level", "warning"])
        targets = [
            ("direct (limit)", f"http://127.0.0.1:{app_port}/", []),
            ("meshtrace-sidecar", f"http://127.0.0.1:{sc_port}/", [sidecar.pid]),
            ("meshtrace-sidecar, 2 threads", f"http://127.0.0.1:{two_port}/", [two.pid]),
            ("meshtrace-sidecar, spans to a discard sink", f"http://127.0.0.1:{sink_sc_port}/", [sink_sc.pid]),
            ("meshtrace-sidecar, sampling 0", f"http://127.0.0.1:{quiet_port}/", [quiet.pid]),
            ("`meshtrace sidecar` (all-in-one binary)", f"http://127.0.0.1:{whole_port}/", [whole.pid]),
            ("nginx", f"http://127.0.0.1:{ngx_port}/", [ngx.pid]),
            ("haproxy", f"http://127.0.0.1:{hap_port}/", [hap.pid]),
        ]
        for name, url, _ in targets:
            try:
                wait_http(url)
            except RuntimeError:
                dead = [p for p in procs if p.poll() is not None]
                for p in dead:
                    print(f"{p.args[0]} exited {p.returncode}: {p.stdout.read()[-2000:]}", file=sys.stderr)
                raise RuntimeError(f"{name} at {url} did not come up")
        print(f"machine: {os.cpu_count()} cores; wrk -t2 -c{args.connections} -d{args.duration}s; "
              f"hey at {args.rate} rps for {args.duration}s; 1 KiB responses, keep-alive; "
              f"{args.rounds} interleaved rounds, medians reported", flush=True)

        def measure(name, url, pids):
            pids = pids + [c for p in pids for c in children(p)]  # nginx workers
            wait_quiet(collector.pid)
            run_wrk(url, 2, args.connections)  # warm-up
            rps, errors = run_wrk(url, args.duration, args.connections)
            # The saturated run leaves the sidecars exporting a backlog: let it drain, so the
            # fixed-rate window measures this path at 1000 rps and nothing left over.
            wait_quiet(collector.pid)
            cpu0 = cpu_seconds(pids) if pids else 0
            p50, p99, total = run_hey(url, args.duration, args.rate)
            cpu = (cpu_seconds(pids) - cpu0) if pids else 0
            return dict(rps=rps, errors=errors, p50=p50, p99=p99, cpu_per_1k=cpu / max(total, 1) * 1000,
                        vcpu_at_rate=cpu / args.duration, rss=rss_mb(pids) if pids else 0,
                        anon=rss_mb(pids, "RssAnon") if pids else 0)

        rounds = []  # one {name: measurement} per round
        for n in range(1, args.rounds + 1):
            print(f"round {n} of {args.rounds}", flush=True)
            this = {}
            for name, url, pids in targets:
                this[name] = measure(name, url, pids)
                r = this[name]
                print(f"  {name}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms", flush=True)
            rounds.append(this)

        def median(values):
            v = sorted(values)
            return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

        names = [t[0] for t in targets]
        direct = "direct (limit)"
        # Each ratio is taken within its round (the two paths measured a minute apart at most),
        # then the median over rounds; likewise the latency added over the direct connection.
        results = {}
        for name in names:
            per = [r[name] for r in rounds]
            results[name] = {k: median([m[k] for m in per]) for k in ("rps", "p50", "p99", "cpu_per_1k", "vcpu_at_rate", "rss", "anon")}
            results[name]["errors"] = sum(m["errors"] for m in per)
            for peer, key in ((direct, "vs_direct"), ("nginx", "vs_nginx"), ("haproxy", "vs_haproxy")):
                ratios = [r[name]["rps"] / r[peer]["rps"] for r in rounds]
                results[name][key] = median(ratios)
                results[name][key + "_all"] = ratios
            results[name]["added_p50"] = median([r[name]["p50"] - r[direct]["p50"] for r in rounds])
            results[name]["added_p99_all"] = [r[name]["p99"] - r[direct]["p99"] for r in rounds]
            results[name]["added_p99"] = median(results[name]["added_p99_all"])
        print()
        print("| path | req/s (wrk) | vs direct | vs nginx | vs haproxy | p50 ms @%d rps | p99 ms | added p50 | added p99 | CPU-s / 1000 req | vCPU @%d rps | RSS MB | of which private (anon) MB |"
              % (args.rate, args.rate))
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            r = results[name]
            print(f"| {name} | {r['rps']:.0f} | {r['vs_direct']:.2f} | {r['vs_nginx']:.2f} | {r['vs_haproxy']:.2f} | "
                  f"{r['p50']:.2f} | {r['p99']:.2f} | {r['added_p50']:+.2f} | {r['added_p99']:+.2f} | "
                  f"{r['cpu_per_1k']:.3f} | {r['vcpu_at_rate']:.3f} | {r['rss']:.1f} | {r['anon']:.1f} |")
        if args.rounds > 1:
            print("\nper round (vs nginx / vs haproxy / added p99 ms):")
            for name in names:
                r = results[name]
                print(f"  {name}: " + "  ".join(f"{a:.2f}/{b:.2f}/{c:+.1f}" for a, b, c in
                                                zip(r["vs_nginx_all"], r["vs_haproxy_all"], r["added_p99_all"])))
        with urllib.request.urlopen(f"http://127.0.0.1:{zipkin_port}/api/v2/services", timeout=5) as r:
            print(f"\ncollector received spans for services: {json.load(r)}")
        print(f"collector CPU during the whole run: {cpu_seconds([collector.pid]):.1f} s (it shares the 2 cores with everything above)")
        if any(r["errors"] for r in results.values()):
            print("non-2xx responses:", {n: r["errors"] for n, r in results.items()})
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
