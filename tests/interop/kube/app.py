"""The two-service app the injected-pod test runs (`python app.py PORT [UPSTREAM_URL]`). It knows
nothing of a proxy: it listens on PORT, answers `/healthz`, and on `/api` calls UPSTREAM_URL by
its Service DNS name, forwarding the trace headers as apps behind Istio must."""
import http.client
import http.server
import json
import sys
import urllib.parse

TRACE_HEADERS = ("traceparent", "tracestate", "x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                 "x-b3-sampled", "x-b3-flags", "b3")


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = None

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz" or not self.upstream:
            self.reply(200, {"path": self.path, "host": self.headers.get("host")})
            return
        url = urllib.parse.urlsplit(self.upstream)
        forward = {k: v for k, v in self.headers.items() if k.lower() in TRACE_HEADERS}
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", url.path, headers=forward)
        answer = conn.getresponse()
        body = json.loads(answer.read())
        conn.close()
        self.reply(answer.status, {"upstream": body})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    App.upstream = sys.argv[2] if len(sys.argv) > 2 else None
    http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), App).serve_forever()
