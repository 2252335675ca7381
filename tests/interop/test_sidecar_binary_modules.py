"""The sidecar-only binary must not carry the collector's storage: no TraceStorage, so no
ClickHouse client (async-http-client, and swift-nio-ssl's BoringSSL with it) and no SQLite.
Read from the object files SwiftPM links into it."""
import os

import pytest

from conftest import BINARY

FORBIDDEN = ("TraceStorage.build", "AsyncHTTPClient.build", "NIOSSL.build", "CNIOBoringSSL.build", "GRDB.build", "Collector.build")


def test_sidecar_binary_links_no_storage_modules():
    link_list = os.path.join(os.path.dirname(BINARY), "meshtrace-sidecar.product", "Objects.LinkFileList")
    if not os.path.exists(link_list):
        pytest.skip(f"no SwiftPM link list at {link_list} (binary not built by SwiftPM here)")
    with open(link_list) as f:
        objects = f.read().split()
    assert any("SidecarProxy.build" in o for o in objects), "link list does not look like the sidecar's"
    linked = sorted({m for o in objects for m in FORBIDDEN if f"/{m}/" in o})
    assert not linked, f"meshtrace-sidecar links {linked}"
    # And the full binary does carry them (the check can fail).
    full = os.path.join(os.path.dirname(BINARY), "meshtrace.product", "Objects.LinkFileList")
    with open(full) as f:
        assert "/AsyncHTTPClient.build/" in f.read()
