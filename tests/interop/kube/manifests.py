"""Helpers for the Kubernetes tests: run `meshtrace inject`/`install`, read their YAML with
PyYAML (not our reader), and hold objects to the API's OpenAPI schema (kubernetes-validate,
strict: unknown fields are errors) plus the cross-field rules the API server checks that a
JSON schema cannot express."""
import os
import subprocess

import kubernetes_validate
import yaml

from conftest import BINARY, ROOT

GOLDEN = os.path.join(ROOT, "Tests", "MeshKubeTests", "Golden")
# The oldest release with native sidecars on by default, and the newest the package ships.
SCHEMA_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def run(*args, stdin=None, check=True):
    proc = subprocess.run([BINARY, *args], input=stdin, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"meshtrace {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def inject(path_or_text, *flags):
    if os.path.exists(path_or_text):
        proc = run("inject", "-f", path_or_text, *flags)
    else:
        proc = run("inject", "-f", "-", *flags, stdin=path_or_text)
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None], proc


def label(obj):
    return f"{obj.get('kind')} {obj.get('metadata', {}).get('name', '')}"


def schema_errors(obj, version):
    """Schema problems as 'Kind name: path: message' lines."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return [f"{label(obj)}: {path}: {e.message}"]
    return []


def pod_specs(obj):
    """(path, pod template) pairs of a workload."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return [("", obj)]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"):
        return [("spec.template", spec["template"])]
    if kind == "CronJob":
        return [("spec.jobTemplate.spec.template", spec["jobTemplate"]["spec"]["template"])]
    return []


def semantic_errors(obj):
    """Rules of the API server's pod validation that the schema cannot state."""
    errors = []
    for path, template in pod_specs(obj):
        spec = template["spec"]
        containers = spec.get("containers", [])
        inits = spec.get("initContainers", [])
        names = [c["name"] for c in containers + inits]
        if len(names) != len(set(names)):
            errors.append(f"{label(obj)}: {path}: container names repeat: {names}")
        volumes = {v["name"] for v in spec.get("volumes", [])}
        # A StatefulSet's claim templates are volumes of its pods too.
        volumes |= {c["metadata"]["name"] for c in (obj.get("spec") or {}).get("volumeClaimTemplates", [])}
        for c in containers + inits:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    errors.append(f"{label(obj)}: {c['name']} mounts unknown volume {m['name']}")
            env_names = [e["name"] for e in c.get("env", [])]
            if len(env_names) != len(set(env_names)):
                errors.append(f"{label(obj)}: {c['name']}: env names repeat")
            ports = {p.get("name") for p in c.get("ports", []) if p.get("name")}
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = ((c.get(kind) or {}).get("httpGet") or {}).get("port")
                if isinstance(port, str) and port not in ports:
                    errors.append(f"{label(obj)}: {c['name']}.{kind} names port {port!r}, not declared")
        for c in containers:
            if "restartPolicy" in c:
                errors.append(f"{label(obj)}: {c['name']}: restartPolicy is for init containers only")
        for c in inits:
            if c.get("startupProbe") and c.get("restartPolicy") != "Always":
                errors.append(f"{label(obj)}: {c['name']}: probes on an init container need restartPolicy Always")
        for key, value in (template.get("metadata", {}).get("annotations") or {}).items():
            if not isinstance(value, str):
                errors.append(f"{label(obj)}: annotation {key} is not a string")
    return errors


def validate_all(objects):
    problems = []
    for obj in objects:
        for version in SCHEMA_VERSIONS:
            problems += [f"[{version}] {p}" for p in schema_errors(obj, version)]
        problems += semantic_errors(obj)
    return problems
