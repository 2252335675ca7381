"""A test upstream app: answers every request with JSON of what it received.

Run as `python echo_app.py` (port 0 = ephemeral); prints `echo app listening port=N` once bound.
Paths: /status/N answers N; /flaky/KEY?fail=N answers 503 to the first N requests for that
path and query, then 200; /slow?ms=N waits first; /stream?chunks=N&size=M streams a chunked
body; /close drops the connection without answering. Anything else echoes.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the sidecar's pool can reuse connections
    seen = {}  # path with query -> requests so far (for /flaky)
    seen_lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(length) if length else b""

    def _handle(self):
        body = self._body()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/close":
            self.close_connection = True
            self.connection.close()
            return
        if url.path == "/slow":
            time.sleep(int(query.get("ms", "100")) / 1000)
        if url.path == "/stream":
            chunks, size = int(query.get("chunks", "4")), int(query.get("size", "1024"))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(chunks):
                self.wfile.write(b"%x\r\n%s\r\n" % (size, b"x" * size))
            self.wfile.write(b"0\r\n\r\n")
            return
        status = 200
        if url.path.startswith("/status/"):
            status = int(url.path[len("/status/"):])
        if url.path.startswith("/flaky/"):
            with EchoHandler.seen_lock:
                EchoHandler.seen[self.path] = EchoHandler.seen.get(self.path, 0) + 1
                n = EchoHandler.seen[self.path]
            status = 503 if n <= int(query.get("fail", "1")) else 200
        payload = json.dumps({
            "method": self.command, "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": len(body),
        }).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), EchoHandler)
    server.daemon_threads = True
    print(f"echo app listening port={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
