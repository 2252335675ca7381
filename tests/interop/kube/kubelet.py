"""A kubelet, as far as one pod's network goes: it runs what an injected pod spec says, in a
network namespace, in the kubelet's order. Each init container's exact command (with `$(VAR)`
expanded from its env) as its securityContext's user, to completion; a native sidecar
(`restartPolicy: Always`) started and held until its startupProbe passes; then the app
containers. Env comes from the pod spec, downward-API `fieldRef`s resolved from the pod's
metadata as the kubelet resolves them (a missing label is ""). Probes are HTTP GETs to the pod
IP from the node (the switch namespace), as the kubelet sends them."""
import os
import re
import signal
import subprocess
import threading
import time

from capture.netns import clean_env


class Proc:
    def __init__(self, name, args, env):
        self.name = name
        self.lines = []
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def output(self):
        return f"--- {self.name} ---\n" + "".join(self.lines[-80:])


def field_value(path, pod):
    """A downward-API `fieldPath` of the pod."""
    meta = pod["metadata"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    return {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta.get("uid", ""),
        "status.podIP": pod["status"]["podIP"], "status.hostIP": pod["status"]["hostIP"],
        "spec.nodeName": pod["spec"].get("nodeName", ""), "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
    }[path]


def container_env(container, pod):
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
        else:
            env[item["name"]] = field_value(item["valueFrom"]["fieldRef"]["fieldPath"], pod)
    return env


def expand(text, env):
    """Kubernetes' `$(VAR)` expansion in command, args and env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


class Kubelet:
    def __init__(self, pods, images):
        """`images` maps an image name to a directory put first on PATH: what the image holds."""
        self.pods = pods
        self.images = images
        self.procs = []

    def run_pod(self, netns_pod, pod, probe_timeout=30.0):
        spec = pod["spec"]
        for container in spec.get("initContainers", []):
            if container.get("restartPolicy") == "Always":
                proc = self.start(netns_pod, container, pod)
                probe = container.get("startupProbe") or container.get("readinessProbe")
                if probe:
                    self.wait_probe(netns_pod, pod, probe, proc, probe_timeout)
            else:
                args, env, user = self.prepare(container, pod)
                result = subprocess.run(netns_pod.command(*args, uid=user[0], gid=user[1]), env=env,
                                        capture_output=True, text=True, timeout=60)
                assert result.returncode == 0, f"init container {container['name']} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        started = []
        for container in spec["containers"]:
            started.append((container, self.start(netns_pod, container, pod)))
        for container, proc in started:
            if container.get("readinessProbe", {}).get("httpGet"):
                self.wait_probe(netns_pod, pod, container["readinessProbe"], proc, probe_timeout)

    def prepare(self, container, pod):
        env = container_env(container, pod)
        args = [expand(a, env) for a in container.get("command", []) + container.get("args", [])]
        assert args, f"{container['name']}: no command (the test's images have no entrypoint)"
        full = clean_env()
        full.update(env)
        image_dir = self.images[container["image"]]
        full["PATH"] = image_dir + ":" + full.get("PATH", "/usr/bin:/bin")
        context = {**(pod["spec"].get("securityContext") or {}), **(container.get("securityContext") or {})}
        uid = context.get("runAsUser")
        gid = context.get("runAsGroup", uid)
        if uid == 0:
            uid = gid = None  # root: no setpriv
        return args, full, (uid, gid)

    def start(self, netns_pod, container, pod):
        args, env, user = self.prepare(container, pod)
        proc = Proc(container["name"], netns_pod.command(*args, uid=user[0], gid=user[1]), env)
        self.pods.track(proc)
        self.procs.append(proc)
        return proc

    def wait_probe(self, netns_pod, pod, probe, proc, timeout):
        get = probe["httpGet"]
        url = f"http://{pod['status']['podIP']}:{get['port']}{get.get('path', '/')}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                raise AssertionError(f"{proc.name} exited {proc.proc.returncode} before its probe passed\n{proc.output()}")
            r = self.pods.switch_sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url, check=False)
            if r.stdout.strip() == "200":
                return
            time.sleep(0.1)
        raise AssertionError(f"probe {url} did not pass in {timeout}s\n{proc.output()}")

    def output(self):
        return "\n".join(p.output() for p in self.procs)
