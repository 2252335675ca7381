/// Istio's expected `istio-iptables` output for some option sets, verbatim from istio/istio
/// `tools/istio-iptables/pkg/capture/testdata/*.golden` (commit in each name); the options are
/// those of `run_test.go`'s case of the same name, on top of `constructTestConfig()` (ports 15001
/// and 15006, uid and gid 1337, no inbound or outbound capture unless the case sets it).
/// Reference data for `NatRulePlanTests`, which maps it to our names before comparing.
enum IstioGoldens {
    /// InboundPortsInclude "*", InboundPortsExclude "22,80,443". Commit e8f9bf50.
    static let inboundWildcardExclude = """
        iptables-save
        ip6tables-save
        * nat
        -N ISTIO_INBOUND
        -N ISTIO_REDIRECT
        -N ISTIO_IN_REDIRECT
        -N ISTIO_OUTPUT
        -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A PREROUTING -p tcp -j ISTIO_INBOUND
        -A ISTIO_INBOUND -p tcp -m multiport --dports 22,80,443 -j RETURN
        -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        COMMIT
        iptables-save
        """

    /// OutboundPortsExclude "22,80,443". Commit e8f9bf50.
    static let outboundPortsExclude = """
        iptables-save
        ip6tables-save
        * nat
        -N ISTIO_INBOUND
        -N ISTIO_REDIRECT
        -N ISTIO_IN_REDIRECT
        -N ISTIO_OUTPUT
        -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -p tcp -m multiport --dports 22,80,443 -j RETURN
        -A ISTIO_OUTPUT -p udp -m multiport --dports 22,80,443 -j RETURN
        -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        COMMIT
        iptables-save
        """

    /// OutboundPortsExclude "22". Commit 8b6c97ac.
    static let outboundPortsExcludeSingle = """
        iptables-save
        ip6tables-save
        * nat
        -N ISTIO_INBOUND
        -N ISTIO_REDIRECT
        -N ISTIO_IN_REDIRECT
        -N ISTIO_OUTPUT
        -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN
        -A ISTIO_OUTPUT -p udp --dport 22 -j RETURN
        -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        COMMIT
        iptables-save
        """

    /// InboundPortsInclude "*". Commit 461f85ba.
    static let inboundPortsWildcard = """
        iptables-save
        ip6tables-save
        * nat
        -N ISTIO_INBOUND
        -N ISTIO_REDIRECT
        -N ISTIO_IN_REDIRECT
        -N ISTIO_OUTPUT
        -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A PREROUTING -p tcp -j ISTIO_INBOUND
        -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        COMMIT
        iptables-save
        """

    /// OutboundIPRangesInclude "10.0.0.0/8". Commit 16e18b3e (the older one-command-a-line format).
    static let ipnets = """
        iptables -t nat -N ISTIO_INBOUND
        iptables -t nat -N ISTIO_REDIRECT
        iptables -t nat -N ISTIO_IN_REDIRECT
        iptables -t nat -N ISTIO_OUTPUT
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
        iptables -t nat -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT
        iptables-save
        """

    /// InboundPortsInclude "32000,31000". Commit 290f43a5.
    static let inboundPortsInclude = """
        iptables -t nat -N ISTIO_INBOUND
        iptables -t nat -N ISTIO_REDIRECT
        iptables -t nat -N ISTIO_IN_REDIRECT
        iptables -t nat -N ISTIO_OUTPUT
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 32000 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 31000 -j ISTIO_IN_REDIRECT
        iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
        iptables -t nat -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        iptables-save
        """

    /// InboundPortsInclude "4000,5000", EnableIPv6. Commit 32edf6d4.
    static let ipv6InboundPorts = """
        iptables -t nat -N ISTIO_INBOUND
        iptables -t nat -N ISTIO_REDIRECT
        iptables -t nat -N ISTIO_IN_REDIRECT
        iptables -t nat -N ISTIO_OUTPUT
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 4000 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport 5000 -j ISTIO_IN_REDIRECT
        iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
        iptables -t nat -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        ip6tables -t nat -N ISTIO_INBOUND
        ip6tables -t nat -N ISTIO_REDIRECT
        ip6tables -t nat -N ISTIO_IN_REDIRECT
        ip6tables -t nat -N ISTIO_OUTPUT
        ip6tables -t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        ip6tables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        ip6tables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        ip6tables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND
        ip6tables -t nat -A ISTIO_INBOUND -p tcp --dport 4000 -j ISTIO_IN_REDIRECT
        ip6tables -t nat -A ISTIO_INBOUND -p tcp --dport 5000 -j ISTIO_IN_REDIRECT
        ip6tables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
        ip6tables -t nat -A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN
        ip6tables -t nat -A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        ip6tables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        ip6tables -t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        ip6tables -t nat -A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        ip6tables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        ip6tables -t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        ip6tables -t nat -A ISTIO_OUTPUT -d ::1/128 -j RETURN
        iptables-save
        ip6tables-save
        """

    /// What Istio's injected `istio-init -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x ""
    /// -b '*' -d 15090,15021,15020` installs: the goldens above combined as run.go combines
    /// them (inbound wildcard with exclusions, then `-i '*'`'s final jump to ISTIO_REDIRECT from
    /// `handleOutboundIncludeRules`). Not an Istio file; shared/reference/wave2-facts.md §A.2.
    static let injectedDefault = """
        * nat
        -N ISTIO_INBOUND
        -N ISTIO_REDIRECT
        -N ISTIO_IN_REDIRECT
        -N ISTIO_OUTPUT
        -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
        -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
        -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
        -A PREROUTING -p tcp -j ISTIO_INBOUND
        -A ISTIO_INBOUND -p tcp -m multiport --dports 15090,15021,15020 -j RETURN
        -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
        -A OUTPUT -j ISTIO_OUTPUT
        -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
        -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
        -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
        -A ISTIO_OUTPUT -j ISTIO_REDIRECT
        COMMIT
        """
}
