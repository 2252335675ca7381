"""`meshtrace inject` and `meshtrace install` output held to the Kubernetes API's own OpenAPI
schemas (1.29, the first release with native sidecars on by default, and the newest that
kubernetes-validate ships), offline, plus the pod rules the schema cannot state. Inputs: a
Bookinfo-shaped app written for these tests and the golden-file Deployment."""
import base64
import os
import subprocess
import tempfile

import pytest
import yaml

from kube.manifests import GOLDEN, inject, run, validate_all

WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"}


def test_validator_catches_a_broken_manifest():
    """The check can fail: an unknown field and a misplaced restartPolicy are both reported."""
    docs, _ = inject(os.path.join(GOLDEN, "probes-deployment.yaml"))
    spec = docs[0]["spec"]["template"]["spec"]
    spec["initContainers"][1]["restartPolicyy"] = "Always"
    spec["containers"][0]["restartPolicy"] = "Always"
    problems = validate_all(docs)
    assert any("restartPolicyy" in p for p in problems), problems
    assert any("restartPolicy is for init containers only" in p for p in problems), problems


@pytest.mark.parametrize("flags", [(), ("--legacy-sidecar",)], ids=["native", "legacy"])
def test_injected_bookinfo_is_valid(flags):
    docs, proc = inject(os.path.join(GOLDEN, "bookinfo.yaml"), *flags)
    assert validate_all(docs) == []
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 6 and len(docs) == 14
    for d in deployments:
        spec = d["spec"]["template"]["spec"]
        names = [c["name"] for c in spec["initContainers"]] + [c["name"] for c in spec["containers"]]
        assert "meshtrace-init" in names and "meshtrace-proxy" in names
    # productpage points Prometheus at its own metrics: kept, and the user is told.
    assert "prometheus.io annotations kept" in proc.stderr


def test_injected_golden_deployment_and_every_kind_are_valid():
    docs, _ = inject(os.path.join(GOLDEN, "probes-deployment.yaml"))
    assert validate_all(docs) == []
    kinds = """
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec: {containers: [{name: app, image: x, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: x}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: x}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: rs, image: x}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: job, image: x}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: OnFailure, containers: [{name: job, image: x}]}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec:
  selector: {app: rc}
  template:
    metadata: {labels: {app: rc}}
    spec: {containers: [{name: rc, image: x}]}
"""
    docs, _ = inject(kinds)
    assert {d["kind"] for d in docs} == WORKLOAD_KINDS - {"Deployment"}
    assert validate_all(docs) == []


def test_install_output_is_valid_and_complete():
    proc = run("install")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert validate_all(docs) == []
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    for expected in [("Namespace", "meshtrace"), ("StatefulSet", "meshtrace-collector"), ("Service", "meshtrace-collector"),
                     ("Deployment", "meshtrace-injector"), ("Service", "meshtrace-injector"), ("Secret", "meshtrace-injector-tls"),
                     ("MutatingWebhookConfiguration", "meshtrace-injector-meshtrace")]:
        assert expected in kinds, kinds
    by_kind = {k: d for d in docs for k in [(d["kind"], d["metadata"]["name"])]}
    service = by_kind[("Service", "meshtrace-collector")]
    assert sorted(p["port"] for p in service["spec"]["ports"]) == [4318, 9411, 16686]
    sts = by_kind[("StatefulSet", "meshtrace-collector")]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    webhook = by_kind[("MutatingWebhookConfiguration", "meshtrace-injector-meshtrace")]["webhooks"][0]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["namespaceSelector"] == {"matchLabels": {"meshtrace-injection": "enabled"}}
    assert webhook["clientConfig"]["service"] == {"name": "meshtrace-injector", "namespace": "meshtrace", "path": "/inject", "port": 443}
    # The caBundle is the CA that signed the Secret's serving certificate for the Service's name.
    secret = by_kind[("Secret", "meshtrace-injector-tls")]["data"]
    with tempfile.TemporaryDirectory() as d:
        for name, data in [("ca.crt", webhook["clientConfig"]["caBundle"]), ("tls.crt", secret["tls.crt"])]:
            with open(os.path.join(d, name), "wb") as f:
                f.write(base64.b64decode(data))
        verify = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.crt"), "-verify_hostname",
                                 "meshtrace-injector.meshtrace.svc", "-purpose", "sslserver", os.path.join(d, "tls.crt")],
                                capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    # Injector pods and the collector are never injected themselves.
    for d in docs:
        for _, template in [("", d["spec"]["template"])] if d["kind"] in ("Deployment", "StatefulSet") else []:
            assert template["metadata"]["annotations"]["meshtrace.io/inject"] == "false"


def test_install_in_another_namespace_with_given_certificates(tmp_path):
    first = [d for d in yaml.safe_load_all(run("install", "--namespace", "tracing").stdout) if d]
    secret = next(d for d in first if d["kind"] == "Secret")["data"]
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / name).write_bytes(base64.b64decode(secret[name]))
    again = [d for d in yaml.safe_load_all(run("install", "--namespace", "tracing", "--cert-dir", str(tmp_path)).stdout) if d]
    assert validate_all(again) == []
    assert next(d for d in again if d["kind"] == "Secret")["data"] == secret
    injector = next(d for d in again if d["kind"] == "Deployment")
    args = injector["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--collector") + 1] == "http://meshtrace-collector.tracing.svc:9411"
    assert all(d["metadata"].get("namespace", "tracing") == "tracing" for d in again if d["kind"] != "MutatingWebhookConfiguration")


@pytest.mark.parametrize("setup, fragment", [
    ({}, "cannot read"),
    ({"ca.crt": "not pem", "tls.crt": "x", "tls.key": "y"}, "ca.crt is not a PEM certificate"),
])
def test_install_refuses_a_bad_cert_dir(tmp_path, setup, fragment):
    for name, text in setup.items():
        (tmp_path / name).write_text(text)
    proc = run("install", "--cert-dir", str(tmp_path), check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert fragment in proc.stderr, proc.stderr


@pytest.mark.parametrize("text, fragment", [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x\n",
     "document 2 (line"),
    ("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n", "document 1 (line 1): kind: unknown kind 'Deploymnet' for apiVersion apps/v1 (did you mean Deployment?)"),
    ("apiVersion: v1\nkind: Service\n---\nhello: world\n", "document 2 (line 4): apiVersion: required, missing"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n      - image: x\n",
     "document 1 (line 1): spec.template.spec.containers[0].name: required, missing"),
])
def test_inject_bad_input_exits_1_naming_document_and_field(text, fragment):
    proc = run("inject", "-f", "-", stdin=text, check=False)
    assert proc.returncode == 1
    assert proc.stdout == "", "no partial output"
    assert fragment in proc.stderr, proc.stderr


def test_inject_reports_a_missing_file():
    proc = run("inject", "-f", "/nonexistent/app.yaml", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "cannot read /nonexistent/app.yaml" in proc.stderr


def test_install_with_clickhouse_runs_a_stateless_collector():
    proc = run("install", "--clickhouse-url", "http://clickhouse.db:8123", "--clickhouse-password-secret", "clickhouse-auth")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert validate_all(docs) == []
    collector = next(d for d in docs if d["metadata"]["name"] == "meshtrace-collector" and d["kind"] in ("Deployment", "StatefulSet"))
    assert collector["kind"] == "Deployment" and collector["spec"]["replicas"] == 2
    container = collector["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--storage") + 1] == "clickhouse"
    assert args[args.index("--clickhouse-url") + 1] == "http://clickhouse.db:8123"
    assert container["env"] == [{"name": "MESHTRACE_CLICKHOUSE_PASSWORD",
                                 "valueFrom": {"secretKeyRef": {"name": "clickhouse-auth", "key": "password"}}}]
    assert "volumeMounts" not in container
    assert not any(d["kind"] == "StatefulSet" for d in docs)
    bad = run("install", "--clickhouse-cluster", "c", check=False)
    assert bad.returncode != 0 and "need --clickhouse-url" in bad.stderr
