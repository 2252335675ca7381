"""The capture tests' apps, which know nothing of a proxy (run with `python apps.py ROLE`):

- `backend`: HTTP on :8080 (IPv4 and IPv6) answering with the headers it received (JSON), gRPC on :50051
  (`demo.Echo/Headers` answers with its metadata), and a server-first TCP exchange on :9000
  (banner, one line in, one line out, close), like SMTP.
- `frontend`: HTTP on :8080; `GET /call` calls `http://backend:8080/echo` with Python's
  http.client, forwarding the trace headers as apps behind Istio must, and answers with
  backend's reply.
- `curl-free clients` for the test to run inside a pod: `grpc HOST:PORT`, `tcp HOST PORT`.
"""
import http.client
import http.server
import json
import socket
import socketserver
import sys
import threading
from concurrent import futures

TRACE_HEADERS = ("traceparent", "tracestate", "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                 "x-b3-sampled", "x-b3-flags", "b3")


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Backend(Quiet):
    def do_GET(self):
        self.reply(200, {"service": "backend", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})


class Frontend(Quiet):
    def do_GET(self):
        if not self.path.startswith("/call"):
            self.reply(200, {"service": "frontend"})
            return
        forward = {k: v for k, v in self.headers.items() if k.lower() in TRACE_HEADERS}
        conn = http.client.HTTPConnection("backend", 8080, timeout=10)
        conn.request("GET", "/echo", headers=forward)
        answer = conn.getresponse()
        body = json.loads(answer.read())
        conn.close()
        self.reply(answer.status, {"service": "frontend", "backend": body})


class DualStackServer(http.server.ThreadingHTTPServer):
    """[::]:8080, which takes IPv4 too (v4-mapped)."""
    address_family = socket.AF_INET6


def serve_http(handler):
    server = DualStackServer(("::", 8080), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


class Banner(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 backend ready\r\n")
        line = self.rfile.readline().strip()
        self.wfile.write(b"250 got " + line + b"\r\n")


def serve_tcp():
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("0.0.0.0", 9000), Banner)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve_grpc():
    try:
        import grpc
    except ImportError:  # a Python without grpcio (the mesh tests run apps with the system's)
        return None

    def headers(request, context):
        return json.dumps({k: v for k, v in context.invocation_metadata()}).encode()

    handler = grpc.method_handlers_generic_handler("demo.Echo", {"Headers": grpc.unary_unary_rpc_method_handler(headers)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("0.0.0.0:50051")
    server.start()
    return server


def grpc_call(target):
    import grpc
    # No proxy: grpcio would otherwise honour http_proxy; the point is a client that knows nothing.
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        reply = channel.unary_unary("/demo.Echo/Headers")(b"hi", timeout=10)
    print(reply.decode(), flush=True)


def tcp_call(host, port):
    with socket.create_connection((host, int(port)), timeout=10) as s:
        f = s.makefile("rwb")
        banner = f.readline().decode().strip()
        f.write(b"QUIT\r\n")
        f.flush()
        answer = f.readline().decode().strip()
    print(json.dumps({"banner": banner, "answer": answer}), flush=True)


def main():
    role = sys.argv[1]
    if role == "backend":
        serve_http(Backend)
        serve_tcp()
        server = serve_grpc()
        print("backend ready", flush=True)
        if server:
            server.wait_for_termination()
        else:
            threading.Event().wait()
    elif role == "frontend":
        serve_http(Frontend)
        print("frontend ready", flush=True)
        threading.Event().wait()
    elif role == "grpc":
        grpc_call(sys.argv[2])
    elif role == "tcp":
        tcp_call(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
