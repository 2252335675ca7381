"""Network namespaces as pods, for the transparent-capture tests (root only).

A "switch" namespace holds a bridge (10.77.0.1/24, fd00:77::1/64); each pod is a namespace with
one veth on that bridge and its own 10.77.0.x and fd00:77::x addresses, and `/etc/netns/NAME/hosts` so that `backend`
resolves to the backend pod under `ip netns exec`. Nothing is added to the machine's own
network namespace: the bridge and every veth live in namespaces the test made, so deleting
the namespaces removes them. `Pods.close()` kills what runs inside and removes every namespace
and hosts file, whatever happened; `sweep_stale()` removes what a killed earlier run left.
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

PREFIX = "mtcap-"
SUBNET = "10.77.0"
SUBNET6 = "fd00:77::"
PROXY_UID = 1337


def clean_env():
    """The environment without proxy settings: the apps and clients here must not know of one."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def sh(*args, check=True, input=None, timeout=60):
    result = subprocess.run(list(args), capture_output=True, text=True, input=input, timeout=timeout, env=clean_env())
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


_proxy_binaries = {}


def proxy_binary(path):
    """`path` where the proxy uid (or an app's) can read and run it: a checkout under /root is
    closed to other users. A hard link in a world-readable temporary directory (a copy across
    file systems)."""
    if path not in _proxy_binaries:
        directory = tempfile.mkdtemp(prefix="mtcap-bin-")
        os.chmod(directory, 0o755)
        target = os.path.join(directory, os.path.basename(path))
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        os.chmod(target, 0o755)
        atexit.register(shutil.rmtree, directory, True)
        _proxy_binaries[path] = target
    return _proxy_binaries[path]


def available():
    """Why the capture tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables); CI runs as root"
    for tool in ("ip", "iptables", "ip6tables", "setpriv", "curl"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def host_links():
    """The machine's own links named as the tests and `capture: netns` name theirs (br0, vN,
    pN, all made inside namespaces): none may appear here. Other links are other people's."""
    names = [line.split(":")[1].strip().split("@")[0] for line in sh("ip", "-o", "link", "show").stdout.splitlines()]
    return "\n".join(sorted(n for n in names if re.fullmatch(r"br0|[vp]\d+", n)))


def namespaces():
    return [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def ours():
    return [name for name in namespaces() if name.startswith(PREFIX)]


def _remove_namespace(name):
    for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "del", name, check=False)
    shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)


def sweep_stale():
    """Removes namespaces a killed earlier run left (named with a pid no longer alive)."""
    for name in ours():
        m = re.search(r"-(\d+)$", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _remove_namespace(name)


class Pod:
    def __init__(self, pods, name, ip):
        self.pods = pods
        self.name = name
        self.ns = f"{PREFIX}{name}{pods.number}-{os.getpid()}"
        self.ip = ip
        self.ip6 = SUBNET6 + ip.rsplit(".", 1)[1]

    def sh(self, *args, check=True, input=None, timeout=60):
        return sh("ip", "netns", "exec", self.ns, *args, check=check, input=input, timeout=timeout)

    def command(self, *args, uid=None, gid=None):
        """`args` run inside the pod, as `uid` (and `gid`, default the uid) when given, through
        setpriv, which execs: the pid stays."""
        prefix = ["ip", "netns", "exec", self.ns]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={gid if gid is not None else uid}", "--clear-groups", "--"]
        return prefix + list(args)


class Pods:
    made = 0

    def __init__(self):
        Pods.made += 1
        self.number = Pods.made  # several sets may exist at once in one test process
        self.switch = f"{PREFIX}sw{self.number}-{os.getpid()}"
        self.pods = []
        self.procs = []
        self.closed = False
        try:
            sh("ip", "netns", "add", self.switch)
            self._in_switch("ip", "link", "set", "lo", "up")
            self._in_switch("ip", "link", "add", "br0", "type", "bridge")
            self._in_switch("ip", "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
            self._in_switch("ip", "-6", "addr", "add", f"{SUBNET6}1/64", "dev", "br0", "nodad")
            self._in_switch("ip", "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _in_switch(self, *args, check=True):
        return sh("ip", "netns", "exec", self.switch, *args, check=check)

    def switch_sh(self, *args, check=True, timeout=60):
        return sh("ip", "netns", "exec", self.switch, *args, check=check, timeout=timeout)

    def switch_command(self, *args):
        return ["ip", "netns", "exec", self.switch, *args]

    def add(self, name, host_number, hosts=None):
        """A pod `name` at 10.77.0.`host_number`, whose /etc/hosts maps `hosts` (name -> ip)."""
        pod = Pod(self, name, f"{SUBNET}.{host_number}")
        self.pods.append(pod)
        sh("ip", "netns", "add", pod.ns)
        os.makedirs(f"/etc/netns/{pod.ns}", exist_ok=True)
        lines = ["127.0.0.1 localhost", "::1 localhost", f"{pod.ip} {name}"]
        lines += [f"{ip} {host}" for host, ip in (hosts or {}).items()]
        with open(f"/etc/netns/{pod.ns}/hosts", "w") as f:
            f.write("\n".join(lines) + "\n")
        port = f"v{len(self.pods)}"
        # Both ends are made inside namespaces: the machine's own namespace never holds them.
        self._in_switch("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", pod.ns)
        self._in_switch("ip", "link", "set", port, "master", "br0")
        self._in_switch("ip", "link", "set", port, "up")
        pod.sh("ip", "link", "set", "lo", "up")
        pod.sh("ip", "addr", "add", f"{pod.ip}/24", "dev", "eth0")
        pod.sh("ip", "-6", "addr", "add", f"{pod.ip6}/64", "dev", "eth0", "nodad")
        pod.sh("ip", "link", "set", "eth0", "up")
        return pod

    def track(self, proc):
        self.procs.append(proc)
        return proc

    def close(self):
        """Stops every process, then removes every namespace and hosts file. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for proc in reversed(self.procs):
            try:
                proc.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        for pod in self.pods:
            _remove_namespace(pod.ns)
        _remove_namespace(self.switch)

    def leftovers(self):
        """What close() failed to remove (names of namespaces and hosts directories)."""
        names = [pod.ns for pod in self.pods] + [self.switch]
        left = [name for name in names if name in namespaces()]
        left += [f"/etc/netns/{name}" for name in names if os.path.exists(f"/etc/netns/{name}")]
        return left
