"""A Python `http.server` app for the SkyWalking interop tests.

With SW_AGENT_PROTOCOL set (http or grpc), the real SkyWalking Python agent (apache-skywalking
1.2.0) instruments it: entry spans for requests (its http.server plugin), exit spans and `sw8`
for the calls it makes with urllib (its urllib.request plugin), reported to
SW_AGENT_COLLECTOR_BACKEND_SERVICES. Every segment the agent reports is also appended to
CAPTURE_FILE, as the agent sent it (the HTTP reporter's JSON, the gRPC reporter's serialized
SegmentObject in hex), so the test can check what was stored against real agent output.

Without the agent it is a plain app that copies only the headers named in FORWARD_HEADERS onto
its outgoing call (an app that forwards `sw8` and nothing else).

GET /call/<path> calls DOWNSTREAM (an http:// URL, reached through HTTP_PROXY: the outbound
sidecar) + /<path> and answers with the downstream status and body. Prints
`agent app listening port=N` once bound.
"""
import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROTOCOL = os.environ.get("SW_AGENT_PROTOCOL")
CAPTURE = os.environ.get("CAPTURE_FILE")


def capture(kind, payload):
    with open(CAPTURE, "a") as f:
        f.write(json.dumps({"kind": kind, "payload": payload}) + "\n")


def start_agent():
    from skywalking import agent, config

    config.init(agent_name=os.environ["SW_AGENT_NAME"], agent_instance_name=os.environ["SW_AGENT_NAME"] + "-1",
                agent_protocol=PROTOCOL, agent_collector_backend_services=os.environ["SW_AGENT_COLLECTOR_BACKEND_SERVICES"])
    if CAPTURE and PROTOCOL == "http":
        # The HTTP reporter posts one JSON body per segment through its requests session.
        from skywalking.client.http import HttpTraceSegmentReportService
        init = HttpTraceSegmentReportService.__init__

        def patched_init(self):
            init(self)
            post = self.session.post

            def recording_post(url, json=None, **kwargs):
                if url.endswith("/v3/segment"):
                    capture("json", json)
                return post(url, json=json, **kwargs)
            self.session.post = recording_post
        HttpTraceSegmentReportService.__init__ = patched_init
    if CAPTURE and PROTOCOL == "grpc":
        # The gRPC reporter streams SegmentObject messages from a generator.
        from skywalking.client.grpc import GrpcTraceSegmentReportService
        report = GrpcTraceSegmentReportService.report

        def recording_report(self, generator):
            def tee():
                for segment in generator:
                    capture("proto", segment.SerializeToString().hex())
                    yield segment
            return report(self, tee())
        GrpcTraceSegmentReportService.report = recording_report
    agent.start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/call/"):
            return self.answer(404, b"no such path\n")
        request = urllib.request.Request(os.environ["DOWNSTREAM"] + self.path[len("/call"):])
        for name in filter(None, os.environ.get("FORWARD_HEADERS", "").split(",")):
            if self.headers.get(name) is not None:
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        self.answer(status, body)

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    if PROTOCOL:
        start_agent()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"agent app listening port={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
