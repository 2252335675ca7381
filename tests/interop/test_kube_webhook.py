"""The injector webhook over real TLS, with AdmissionReview bodies shaped as the API server
sends them (a ReplicaSet's pod with defaults filled in). Its JSON patch, applied by Python's
`jsonpatch` (a library we did not write), must give exactly the pod `meshtrace inject` makes."""
import base64
import copy
import json
import os
import ssl
import socket

import jsonpatch
import pytest
import urllib3
import yaml

from kube.injector import Injector, SERVICE_NAME
from kube.manifests import GOLDEN, inject, validate_all


@pytest.fixture(scope="module")
def injector(tmp_path_factory):
    server = Injector(tmp_path_factory.mktemp("injector"), extra_args=["--max-body-bytes", "200000"]).start()
    yield server
    server.stop()


@pytest.fixture
def review():
    with open(os.path.join(GOLDEN, "admission-review-pod.json")) as f:
        return json.load(f)


def patched(response, pod):
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.JsonPatch(ops).apply(copy.deepcopy(pod)), ops


def workload_env(pod):
    proxy = next(c for c in pod["spec"]["initContainers"] + pod["spec"]["containers"] if c["name"] == "meshtrace-proxy")
    return next(e for e in proxy["env"] if e["name"] == "MESHTRACE_WORKLOAD_NAME")


def test_healthz_over_tls_checked_against_the_ca_bundle(injector):
    r = injector.pool.request("GET", "/healthz")
    assert (r.status, r.data) == (200, b"ok\n")
    # The certificate is for the Service's name; any other name fails verification.
    wrong = urllib3.HTTPSConnectionPool("127.0.0.1", injector.port, ca_certs=str(injector.ca), cert_reqs="CERT_REQUIRED",
                                        server_hostname="evil.example.com", assert_hostname="evil.example.com", retries=False)
    with pytest.raises(urllib3.exceptions.SSLError):
        wrong.request("GET", "/healthz")


def test_patch_applied_by_jsonpatch_gives_injects_pod(injector, review):
    pod = review["request"]["object"]
    response = injector.review(review)
    assert response["uid"] == review["request"]["uid"]
    webhook_pod, ops = patched(response, pod)
    # The same pod through `meshtrace inject` (JSON is YAML).
    [inject_pod], _ = inject(json.dumps(pod))
    # The webhook names the workload from the owner (the ReplicaSet's hash trimmed, as Istio
    # does); inject, given a bare pod, can only use its generateName.
    assert workload_env(webhook_pod)["value"] == "reviews-v1"
    assert workload_env(inject_pod)["value"] == "reviews-v1-5c7d8f9b4"
    workload_env(inject_pod)["value"] = "reviews-v1"
    assert webhook_pod == inject_pod
    assert validate_all([webhook_pod]) == []
    # Fine-grained: nothing of the pod is replaced that injection does not change.
    assert all(not op["path"].startswith("/spec/volumes") and op["path"] != "/spec" for op in ops), ops


def test_bare_pod_patch_is_exactly_injects_pod(injector, review):
    pod = review["request"]["object"]
    pod["metadata"].pop("generateName")
    pod["metadata"].pop("ownerReferences")
    pod["metadata"]["name"] = "debug"
    response = injector.review(review)
    webhook_pod, _ = patched(response, pod)
    [inject_pod], _ = inject(json.dumps(pod))
    assert webhook_pod == inject_pod


def test_opt_out_and_already_injected_pods_are_not_patched(injector, review):
    injected, _ = patched(injector.review(review), review["request"]["object"])
    again = copy.deepcopy(review)
    again["request"]["object"] = injected
    response = injector.review(again)
    assert response["allowed"] is True and "patch" not in response

    review["request"]["object"]["metadata"]["annotations"] = {"meshtrace.io/inject": "false"}
    response = injector.review(review)
    assert response["allowed"] is True and "patch" not in response and "warnings" not in response


def test_non_pod_kind_is_allowed_unchanged(injector):
    service_review = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "svc-1", "kind": {"group": "", "version": "v1", "kind": "Service"},
                    "resource": {"group": "", "version": "v1", "resource": "services"}, "operation": "CREATE",
                    "object": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}},
    }
    assert injector.review(service_review) == {"uid": "svc-1", "allowed": True}


@pytest.mark.parametrize("body", [
    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "m-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                                                                  "operation": "CREATE", "object": {"spec": {"containers": "not a list"}}}},
    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "m-2", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                                                                  "operation": "CREATE", "object": {"metadata": {"annotations": {"meshtrace.io/sampling": "lots"}},
                                                                                                                    "spec": {"containers": [{"name": "a"}]}}}},
    [1, 2, 3],
], ids=["no-request", "containers-not-a-list", "bad-annotation", "not-an-object"])
def test_malformed_reviews_are_allowed_with_a_warning(injector, body):
    response = injector.review(body)
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["warnings"][0].startswith("meshtrace: not injected"), response


@pytest.mark.parametrize("body, reason", [
    (b"<AdmissionReview/>", b"not JSON"),
    (b'{"apiVersion": "admission.k8s.io/v1", "request": {"uid": ', b"not JSON"),
    (b"[" * 5000, b"not JSON"),
    (b'{"pad": "' + b"x" * 300000 + b'"}', b"over 200000 bytes"),
], ids=["xml", "truncated", "too-deep", "too-big"])
def test_not_json_or_too_big_is_a_400_with_a_reason(injector, body, reason):
    r = injector.post(body)
    assert r.status == 400, (r.status, r.data[:200])
    assert reason in r.data


def test_plain_http_is_not_served(injector):
    with socket.create_connection(("127.0.0.1", injector.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(1024)
    assert not data.startswith(b"HTTP/1.1 200")
