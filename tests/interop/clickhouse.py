"""Throwaway clickhouse-server processes for interop tests, through scripts/clickhouse-test-server
(config in a temp dir, free ports, a watchdog that stops them if pytest dies)."""
import os
import subprocess

import pytest
import requests

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "clickhouse-test-server")


def installed():
    return any(os.access(p, os.X_OK) for p in ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"))


def require_clickhouse():
    """Skips with the reason when the binary is absent, except in CI, where it must be there."""
    if not installed():
        if os.environ.get("CI") == "true":
            pytest.fail("clickhouse-server is not installed but CI must run the ClickHouse tests (scripts/test installs it)")
        pytest.skip("clickhouse-server is not installed (apt-get install clickhouse-server)")


class ClickHouse:
    def __init__(self, directory, shards=1):
        self.dir = str(directory)
        out = subprocess.run([SCRIPT, "start", self.dir, "--shards", str(shards), "--watch", str(os.getpid())],
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, f"clickhouse-test-server failed:\n{out.stdout}\n{out.stderr}"
        self.urls = [dict(kv.split("=", 1) for kv in line.split())["url"] for line in out.stdout.splitlines() if line.startswith("shard=")]
        assert len(self.urls) == shards, out.stdout

    def query(self, sql, shard=1):
        r = requests.post(self.urls[shard - 1] + "/", data=sql.encode(), timeout=30)
        assert r.status_code == 200, f"{sql} -> {r.status_code}: {r.text}"
        return r.text

    def kill(self, shard=1, signal="TERM"):
        subprocess.run([SCRIPT, "kill", self.dir, str(shard), signal], check=True, timeout=60)

    def restart(self, shard=1):
        subprocess.run([SCRIPT, "restart", self.dir, str(shard)], check=True, timeout=90)

    def stop(self):
        subprocess.run([SCRIPT, "stop", self.dir], timeout=120)


@pytest.fixture
def clickhouse(tmp_path):
    require_clickhouse()
    ch = ClickHouse(tmp_path / "clickhouse")
    yield ch
    ch.stop()


@pytest.fixture(scope="module")
def clickhouse_cluster(tmp_path_factory):
    """Shared by a module's tests (ZooKeeper and two servers take ~15 s to start); each test
    uses its own database."""
    require_clickhouse()
    ch = ClickHouse(tmp_path_factory.mktemp("clickhouse-cluster"), shards=2)
    yield ch
    ch.stop()
