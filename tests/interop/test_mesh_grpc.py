"""gRPC through `meshtrace up`: a grpcio client dials its `<NAME>_URL` egress listener, a grpcio
server sits behind its inbound sidecar (`health: tcp`), and the call is one CLIENT/SERVER pair
in the collector, as an HTTP call would be."""
import os
import sys
import time

from conftest import wait_until
from test_mesh import Mesh, meshes, spans_by_service  # noqa: F401 (meshes is a fixture)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_mesh")


def test_a_grpc_call_across_the_mesh_is_a_client_server_pair(tmp_path, meshes):
    mesh_file = tmp_path / "mesh.yaml"
    mesh_file.write_text(f"""name: grpc
services:
  - name: caller
    command: {sys.executable}
    args: [{HERE}/caller.py]
    upstreams: [reports]
  - name: reports
    command: {sys.executable}
    args: [{HERE}/reports_server.py]
    health: tcp
gateway:
  port: 0
  routes:
    /: caller
collector:
  queryPort: 0
  zipkinPort: 0
  otlpPort: 0
  adminPort: 0
  dataDir: {tmp_path / "data"}
""")
    mesh = Mesh(["up", "-f", str(mesh_file), "--control-port", "0"], tmp_path)
    meshes.append(mesh)
    mesh.wait_for(r"called ok: report:7")
    now = int(time.time() * 1e6)

    def pair():
        traces = mesh.traces("caller", now - 600_000_000, now + 60_000_000)
        for trace in traces:
            kinds = spans_by_service(trace)
            if kinds.get(("caller", "client")) and kinds.get(("reports", "server")):
                return trace
        return None

    trace = wait_until(pair, timeout=30, message="the call's CLIENT and SERVER spans in one trace")
    kinds = spans_by_service(trace)
    client, = kinds[("caller", "client")]
    server, = kinds[("reports", "server")]
    assert client["operationName"] == server["operationName"] == "POST /demo.Reports/Get"
    assert server["references"][0]["spanID"] == client["spanID"], "the CLIENT span is the SERVER span's parent"
    tags = {t["key"]: t["value"] for t in server["tags"]}
    assert str(tags["grpc.status_code"]) == "0" and tags["rpc.system"] == "grpc"
    # The call by name went through http_proxy as a CONNECT tunnel, and is still a pair.
    mesh.wait_for(r"called by name ok: report:8")

    def pairs():
        traces = mesh.traces("caller", now - 600_000_000, now + 60_000_000)
        found = [t for t in traces if spans_by_service(t).get(("caller", "client")) and spans_by_service(t).get(("reports", "server"))]
        return found if len(found) >= 2 else None

    wait_until(pairs, timeout=30, message="the by-name call's CLIENT and SERVER spans too")
    # `health: tcp` makes the gRPC server healthy (an HTTP/1 probe never would).
    wait_until(lambda: all(s["healthy"] for s in mesh.status()["services"] if s["name"] in ("caller", "reports")),
               timeout=20, message="both services healthy")
    mesh.stop()
