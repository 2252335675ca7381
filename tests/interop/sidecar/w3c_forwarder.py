"""The W3C Trace Context test service's role in our conformance test: an app between an inbound
and an outbound sidecar that forwards the trace headers it received, as it received them.

Run as `python w3c_forwarder.py PROXY_PORT` (listens on an ephemeral port; prints
`w3c forwarder listening port=N`). Each request is sent on to `http://sink<path>` through the
outbound sidecar at 127.0.0.1:PROXY_PORT (as an app with HTTP_PROXY would), carrying every
`traceparent` and `tracestate` line this app received, one field line each, in order. It answers
JSON: `received` (the header lines it got) and `sink` (the sink's echo of what reached it).
"""
import http.client
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORWARDED = ("traceparent", "tracestate")


class Forwarder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy_port = 0

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        received = [[k, v] for k, v in self.headers.items()]
        conn = http.client.HTTPConnection("127.0.0.1", Forwarder.proxy_port, timeout=10)
        try:
            conn.putrequest("GET", "http://sink" + self.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", "sink")
            for name, value in received:
                if name.lower() in FORWARDED:
                    conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            sink = json.loads(response.read() or b"{}")
            status = response.status
        finally:
            conn.close()
        payload = json.dumps({"received": received, "sink": sink, "sink_status": status}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main():
    Forwarder.proxy_port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Forwarder)
    server.daemon_threads = True
    print(f"w3c forwarder listening port={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
