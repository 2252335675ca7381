"""The injected pod spec, run. `meshtrace inject` makes the manifests of a two-Deployment app;
a small kubelet (kube/kubelet.py) runs what they say in network namespaces: the init
container's exact command (`meshtrace-sidecar iptables …`, as root), then the native sidecar
with the pod's downward-API env as UID 1337 until its startup probe passes, then the app.
Service names resolve through each pod's /etc/hosts, the collector runs on the node at the
name the manifests point at. A request then crosses frontend -> backend through both proxies;
the trace and the Istio metric labels must name the namespace, workloads and canonical
services. This proves the manifest and the data path agree. Root only (CI runs as root)."""
import json
import os
import sys

import pytest
import yaml

from capture import netns
from conftest import BINARY, ROOT, wait_until
from kube.kubelet import Kubelet, Proc
from kube.manifests import inject

pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kube", "app.py")
SIDECAR = os.path.join(os.path.dirname(BINARY), "meshtrace-sidecar")
NAMESPACE = "shop"

MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: frontend-v1, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{app: frontend}}}}
  template:
    metadata:
      labels: {{app: frontend, version: v1}}
    spec:
      serviceAccountName: frontend
      containers:
      - name: frontend
        image: example.com/shop/app:1.0
        command: [{sys.executable}, {APP}, "9080", "http://backend.{NAMESPACE}.svc.cluster.local:9080/items"]
        ports: [{{containerPort: 9080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 9080}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: backend-v2, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{app.kubernetes.io/name: backend}}}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: backend, app.kubernetes.io/version: "2.1", version: v2}}
    spec:
      containers:
      - name: backend
        image: example.com/shop/app:1.0
        command: [{sys.executable}, {APP}, "9080"]
        ports: [{{containerPort: 9080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 9080}}
"""


def pod_from(deployment, ip, suffix):
    """The pod a ReplicaSet would create from the Deployment's template."""
    template = deployment["spec"]["template"]
    name = deployment["metadata"]["name"]
    return {
        "metadata": {"name": f"{name}-5c7d8f9b4-{suffix}", "namespace": NAMESPACE,
                     "labels": {**template["metadata"]["labels"], "pod-template-hash": "5c7d8f9b4"},
                     "annotations": template["metadata"].get("annotations", {})},
        "spec": {**template["spec"], "nodeName": "node-1"},
        "status": {"podIP": ip, "hostIP": "10.77.0.1"},
    }


@pytest.fixture
def cluster(tmp_path):
    netns.sweep_stale()
    pods = netns.Pods()
    try:
        yield pods
    finally:
        pods.close()
        assert pods.leftovers() == []


def test_injected_pods_run_and_name_their_workloads(cluster, tmp_path):
    docs, _ = inject(MANIFEST)
    frontend_deploy, backend_deploy = docs
    image = os.path.dirname(netns.proxy_binary(SIDECAR))  # the image: meshtrace-sidecar on PATH
    node_ip = "10.77.0.1"
    hosts = {"meshtrace-collector.meshtrace.svc": node_ip,
             f"backend.{NAMESPACE}.svc.cluster.local": "10.77.0.3", f"frontend.{NAMESPACE}.svc.cluster.local": "10.77.0.2"}
    fe = cluster.add("frontend", 2, hosts=hosts)
    be = cluster.add("backend", 3, hosts=hosts)

    # The collector at the address the manifests name (meshtrace-collector.meshtrace.svc:9411), on the node.
    collector = cluster.track(Proc("collector", cluster.switch_command(
        BINARY, "collector", "--host", node_ip, "--storage", "memory", "--zipkin-port", "9411", "--otlp-http-port", "0",
        "--query-port", "16686", "--admin-port", "0"), netns.clean_env()))
    wait_until(lambda: cluster.switch_sh("curl", "-sf", f"http://{node_ip}:16686/api/services", check=False).returncode == 0,
               message="collector up")

    kubelet = Kubelet(cluster, {"meshtrace:latest": image, "example.com/shop/app:1.0": os.path.dirname(sys.executable)})
    frontend_pod = pod_from(frontend_deploy, fe.ip, "fe001")
    backend_pod = pod_from(backend_deploy, be.ip, "be001")
    try:
        kubelet.run_pod(be, backend_pod)
        kubelet.run_pod(fe, frontend_pod)

        # A client outside the pods calls frontend at its pod IP, as a Service would send it.
        r = cluster.switch_sh("curl", "-s", "--max-time", "10", "-H", "x-b3-sampled: 1", f"http://{fe.ip}:9080/api")
        body = json.loads(r.stdout)
        assert body["upstream"]["path"] == "/items"
        assert body["upstream"]["host"] == f"backend.{NAMESPACE}.svc.cluster.local:9080"

        def trace():
            out = cluster.switch_sh("curl", "-s", f"http://{node_ip}:16686/api/traces?service=frontend&limit=20", check=False).stdout
            for t in (json.loads(out or "{}").get("data") or []):
                names = {(t["processes"][s["processID"]]["serviceName"], s["operationName"]) for s in t["spans"]}
                if len(t["spans"]) >= 3 and any(n[0] == "backend" for n in names):
                    return t
            return None

        t = wait_until(trace, timeout=20, message="frontend -> backend trace")
        spans = {(t["processes"][s["processID"]]["serviceName"], next(x["value"] for x in s["tags"] if x["key"] == "span.kind")): s
                 for s in t["spans"]}
        client = spans[("frontend", "client")]
        server = spans[("backend", "server")]
        assert server["references"][0]["spanID"] == client["spanID"]
        tags = {x["key"]: x["value"] for x in client["tags"]}
        assert tags["peer.service"] == "backend"
        assert tags["istio.namespace"] == NAMESPACE
        assert tags["node_id"] == f"sidecar~{fe.ip}~{frontend_pod['metadata']['name']}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"
        # The kubelet's readiness probes went through the proxies but made no spans.
        assert not any(s["operationName"].endswith("/healthz") for s in t["spans"])

        fe_metrics = cluster.switch_sh("curl", "-s", f"http://{fe.ip}:15090/stats/prometheus").stdout
        be_metrics = cluster.switch_sh("curl", "-s", f"http://{be.ip}:15090/stats/prometheus").stdout
        outbound = next(l for l in fe_metrics.splitlines() if l.startswith("istio_requests_total{") and 'reporter="source"' in l)
        for label in ['source_workload="frontend-v1"', f'source_workload_namespace="{NAMESPACE}"', 'source_canonical_service="frontend"',
                      'source_canonical_revision="v1"', 'source_app="frontend"', 'destination_service_name="backend"',
                      f'destination_service_namespace="{NAMESPACE}"', f'destination_service="backend.{NAMESPACE}.svc.cluster.local"',
                      'response_code="200"']:
            assert label in outbound, f"{label} not in {outbound}"
        inbound = next(l for l in be_metrics.splitlines()
                       if l.startswith("istio_requests_total{") and 'reporter="destination"' in l and 'source_workload="frontend"' in l)
        for label in ['destination_workload="backend-v2"', f'destination_workload_namespace="{NAMESPACE}"',
                      'destination_canonical_service="backend"', 'destination_canonical_revision="2.1"', 'destination_version="v2"']:
            assert label in inbound, f"{label} not in {inbound}"
    except BaseException:
        print(kubelet.output())
        print(collector.output())
        raise
