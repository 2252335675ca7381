"""`meshtrace iptables` (Istio's istio-init) against the real iptables programs, each run in a
network namespace of the test's own (root only; skipped with the reason otherwise). The rule
text itself is checked against Istio's golden files in Tests/CaptureRulesTests."""
import os
import subprocess

import pytest

from conftest import BINARY
from capture import netns

pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))


def host_nat():
    """The machine's own nat tables and links, which the tests must leave as they found them."""
    return netns.sh("iptables", "-t", "nat", "-S").stdout + netns.sh("ip6tables", "-t", "nat", "-S").stdout + netns.host_links()


@pytest.fixture
def ns():
    netns.sweep_stale()
    before = host_nat()
    name = f"{netns.PREFIX}ipt-{os.getpid()}"
    netns.sh("ip", "netns", "add", name)
    try:
        netns.sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        netns.sh("ip", "netns", "del", name, check=False)
        assert name not in netns.namespaces()
        assert host_nat() == before, "the machine's own nat table changed"


def meshtrace(ns, *args, check=False):
    return netns.sh("ip", "netns", "exec", ns, BINARY, "iptables", *args, check=check)


def nat_rules(ns, program="iptables", save_program=None):
    text = netns.sh("ip", "netns", "exec", ns, save_program or f"{program}-save", "-t", "nat").stdout
    return [line for line in text.splitlines() if line.startswith("-A ") or line.startswith(":MESHTRACE")]


def lo_addresses(ns):
    return netns.sh("ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "dev", "lo").stdout


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_install_is_idempotent_and_cleanup_removes_exactly_what_was_added(ns, backend):
    # Someone else's rule, which must survive both install and cleanup.
    netns.sh("ip", "netns", "exec", ns, f"iptables-{backend}", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1/32", "-j", "RETURN")
    first = meshtrace(ns, "--backend", backend)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[0].startswith(f"iptables backend: iptables-{backend} ("), first.stdout
    assert ("nf_tables" if backend == "nft" else "legacy") in first.stdout.splitlines()[0]
    save = f"iptables-{backend}-save"
    rules = nat_rules(ns, save_program=save)
    assert "-A OUTPUT -j MESHTRACE_OUTPUT" in rules
    assert "-A PREROUTING -p tcp -j MESHTRACE_INBOUND" in rules
    assert "-A MESHTRACE_OUTPUT -m owner --uid-owner 1337 -j RETURN" in rules
    assert "-A MESHTRACE_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules
    assert "-A MESHTRACE_INBOUND -p tcp -m multiport --dports 15000,15021,15090 -j RETURN" in rules
    v6 = nat_rules(ns, save_program=f"ip6tables-{backend}-save")
    assert "-A MESHTRACE_OUTPUT -s ::6/128 -o lo -j RETURN" in v6
    assert "inet6 ::6/128" in lo_addresses(ns)

    second = meshtrace(ns, "--backend", backend)
    assert second.returncode == 0, second.stdout + second.stderr
    assert nat_rules(ns, save_program=save) == rules, "a second run must leave one copy of each rule"
    assert nat_rules(ns, save_program=f"ip6tables-{backend}-save") == v6

    cleanup = meshtrace(ns, "--backend", backend, "--cleanup")
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert nat_rules(ns, save_program=save) == ["-A OUTPUT -d 192.0.2.1/32 -j RETURN"]
    assert nat_rules(ns, save_program=f"ip6tables-{backend}-save") == []
    assert "::6/128" not in lo_addresses(ns)
    again = meshtrace(ns, "--backend", backend, "--cleanup")
    assert again.returncode == 0 and "no Meshtrace nat rules to remove" in again.stdout


def test_auto_picks_the_flavour_that_already_holds_rules(ns):
    netns.sh("ip", "netns", "exec", ns, "iptables-legacy", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1/32", "-j", "RETURN")
    result = meshtrace(ns, "--ipv6", "off")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("iptables backend: iptables-legacy ("), result.stdout
    assert "-A OUTPUT -j MESHTRACE_OUTPUT" in nat_rules(ns, save_program="iptables-legacy-save")
    assert meshtrace(ns, "--cleanup", "--ipv6", "off").returncode == 0


def test_dry_run_prints_both_families_and_changes_nothing(ns):
    result = meshtrace(ns, "--dry-run", "--include-inbound-ports", "8080,9000", "--exclude-outbound-cidrs", "10.96.0.0/12,fd00:96::/108")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "# IPv4 (iptables-restore --noflush)" in out and "# IPv6 (ip6tables-restore --noflush)" in out
    assert "-A MESHTRACE_INBOUND -p tcp --dport 8080 -j MESHTRACE_IN_REDIRECT" in out
    assert "-A MESHTRACE_OUTPUT -d 10.96.0.0/12 -j RETURN" in out
    assert "-A MESHTRACE_OUTPUT -d fd00:96::/108 -j RETURN" in out
    assert nat_rules(ns) == [] and nat_rules(ns, "ip6tables") == []


def test_bad_values_name_the_flag(ns):
    result = meshtrace(ns, "--exclude-outbound-cidrs", "10.0.0/8")
    assert result.returncode != 0
    assert "--exclude-outbound-cidrs: '10.0.0/8' is not a CIDR" in result.stderr
    result = meshtrace(ns, "--inbound-capture-port", "15001")
    assert result.returncode != 0 and "must differ" in result.stderr
    assert nat_rules(ns) == []


def test_without_privileges_it_fails_with_a_message_and_installs_nothing(ns):
    result = netns.sh("ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                      BINARY, "iptables", "--ipv6", "off", check=False)
    assert result.returncode != 0
    assert "meshtrace iptables:" in result.stderr and "needs root, or the NET_ADMIN and NET_RAW capabilities" in result.stderr, result.stderr
    assert nat_rules(ns) == []
