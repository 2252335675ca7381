"""A gRPC client in the mesh: dials its REPORTS_URL egress listener (host:port, plaintext), as
the README tells gRPC clients to, until one call succeeds; then dials `reports:50051` by name,
through the http_proxy `meshtrace up` set (grpcio's default: a CONNECT tunnel); then serves
/healthz so `up` is happy."""
import http.server
import os
import time

import grpc

target = os.environ["REPORTS_URL"].removeprefix("http://")
deadline = time.monotonic() + 60
while True:
    try:
        with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
            reply = channel.unary_unary("/demo.Reports/Get")(b"7", timeout=5)
        print(f"called ok: {reply.decode()}", flush=True)
        break
    except grpc.RpcError as error:
        if time.monotonic() > deadline:
            print(f"call failed: {error.code()} {error.details()}", flush=True)
            break
        time.sleep(0.2)  # the mesh may still be starting the server: retry with a bound

assert os.environ.get("http_proxy"), "meshtrace up sets http_proxy for its apps"
try:
    with grpc.insecure_channel("reports:50051") as channel:  # the proxy from the environment
        reply = channel.unary_unary("/demo.Reports/Get")(b"8", timeout=10)
    print(f"called by name ok: {reply.decode()}", flush=True)
except grpc.RpcError as error:
    print(f"call by name failed: {error.code()} {error.details()}", flush=True)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
