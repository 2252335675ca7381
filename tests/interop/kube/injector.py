"""Runs `meshtrace injector` over real TLS with the certificate `meshtrace install` generated,
and talks to it as the API server does: HTTPS, the CA from the webhook configuration's
caBundle, and the Service's DNS name checked against the certificate."""
import base64
import json
import queue
import re
import subprocess
import threading
import time

import urllib3
import yaml

from conftest import BINARY
from kube.manifests import run

SERVICE_NAME = "meshtrace-injector.meshtrace.svc"


class Injector:
    def __init__(self, workdir, extra_args=()):
        docs = [d for d in yaml.safe_load_all(run("install").stdout) if d]
        secret = next(d for d in docs if d["kind"] == "Secret")["data"]
        webhook = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")["webhooks"][0]
        self.ca = workdir / "ca.crt"
        self.ca.write_bytes(base64.b64decode(webhook["clientConfig"]["caBundle"]))
        (workdir / "tls.crt").write_bytes(base64.b64decode(secret["tls.crt"]))
        (workdir / "tls.key").write_bytes(base64.b64decode(secret["tls.key"]))
        self.args = [BINARY, "injector", "--host", "127.0.0.1", "--port", "0", "--tls-cert", str(workdir / "tls.crt"),
                     "--tls-key", str(workdir / "tls.key"), *extra_args]
        self.proc = None
        self.lines = []

    def start(self, timeout=30.0):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError("injector exited early:\n" + "".join(self.lines))
                continue
            m = "meshtrace injector listening" in line and re.search(r"address=https://127\.0\.0\.1:(\d+)/inject", line)
            if m:
                self.port = int(m.group(1))
                self.pool = urllib3.HTTPSConnectionPool(
                    "127.0.0.1", self.port, ca_certs=str(self.ca), cert_reqs="CERT_REQUIRED",
                    server_hostname=SERVICE_NAME, assert_hostname=SERVICE_NAME, retries=False, timeout=10)
                return self
        raise AssertionError("injector did not report its address:\n" + "".join(self.lines))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def post(self, body, path="/inject"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.pool.request("POST", path, body=data, headers={"Content-Type": "application/json"})

    def review(self, review):
        r = self.post(review)
        assert r.status == 200, (r.status, r.data)
        answer = json.loads(r.data)
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        return answer["response"]
