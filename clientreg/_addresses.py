"""What kind of address a host is: loopback, private, link-local, denied, and the policies that admit them.

The lowest layer of clientreg's network rules, imported by both :mod:`clientreg.http` (plain http only to
loopback hosts, the address policy of :class:`~clientreg.http.HttpSettings`) and :mod:`clientreg.ssrf`
(the guard that vets every resolved address before connecting). It imports nothing from either, so the
two never import each other. Pure functions over :mod:`ipaddress`: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

__all__ = [
    "STRICT",
    "USER_CONFIGURED",
    "AddressPolicy",
    "IPAddress",
    "address_refusal",
    "denied",
    "ip_literal",
    "is_loopback_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_IPV6_LOOPBACK: Final = ipaddress.ip_address("::1")
_METADATA = "the cloud metadata service"
_SPECIAL = "a special-purpose address, not globally routable"
# Never a server, whatever the switches say and whatever this Python's ``ipaddress`` tables hold: those
# tables changed between releases (192.0.0.192 and 100.100.100.200 were not special to every version), so
# the addresses that matter most are listed here, most specific first. IPv4 addresses embedded in IPv6
# (mapped, IPv4-compatible, NAT64, 6to4, Teredo) are checked against the same list.
_DENIED: Final = tuple((ipaddress.ip_network(net), why) for net, why in (
    ("169.254.169.254/32", _METADATA),  # AWS, GCP, Azure, OpenStack, DigitalOcean, …
    ("169.254.170.2/32", _METADATA),  # AWS ECS task metadata and credentials
    ("100.100.100.200/32", _METADATA),  # Alibaba Cloud; inside 100.64/10, which allow_private admits
    ("192.0.0.192/32", _METADATA),  # Oracle Cloud
    ("fd00:ec2::254/128", _METADATA),  # AWS IMDS over IPv6; inside fc00::/7, which allow_private admits
    ("169.254.0.0/16", "a link-local address"),  # RFC 3927
    ("fe80::/10", "a link-local address"),
    ("0.0.0.0/32", "the unspecified address"),
    ("::/128", "the unspecified address"),
    ("::/96", f"{_SPECIAL} (IPv4-compatible, deprecated by RFC 4291 §2.5.5.1)"),  # ::1 aside, see denied()
    ("0.0.0.0/8", f"{_SPECIAL} ('this network', RFC 791)"),
    ("192.0.0.0/24", f"{_SPECIAL} (IETF protocol assignments, RFC 6890)"),
    ("192.0.2.0/24", f"{_SPECIAL} (documentation, RFC 5737)"),
    ("198.51.100.0/24", f"{_SPECIAL} (documentation, RFC 5737)"),
    ("203.0.113.0/24", f"{_SPECIAL} (documentation, RFC 5737)"),
    ("2001:db8::/32", f"{_SPECIAL} (documentation, RFC 3849)"),
    ("198.18.0.0/15", f"{_SPECIAL} (benchmarking, RFC 2544)"),
    ("224.0.0.0/4", "a multicast address"),
    ("ff00::/8", "a multicast address"),
    ("255.255.255.255/32", "a reserved address (limited broadcast)"),
    ("240.0.0.0/4", "a reserved address (RFC 1112)"),
    ("fec0::/10", "a site-local address"),  # deprecated by RFC 3879, yet "global" to the ipaddress module
    ("64:ff9b:1::/48", f"{_SPECIAL} (local-use NAT64, RFC 8215)"),
    ("::ffff:0:0:0/96", f"{_SPECIAL} (IPv4-translated, RFC 2765)"),
))
# What ``allow_private`` admits: networks an in-cluster or VPN-reachable AS lives on. Other special-purpose
# ranges (documentation, benchmarking, 0/8, 240/4, …) are never where a server is, so they stay refused.
_PRIVATE: Final = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space: carrier-grade NAT, some pod networks, Tailscale
    "fc00::/7",  # RFC 4193 unique local addresses
))


@dataclass(frozen=True)
class AddressPolicy:
    """Which kinds of address a process may connect to, beyond public ones.

    Link-local (the cloud metadata service included), multicast, unspecified, reserved and other
    special-purpose addresses are refused whatever the switches say; IPv4 addresses embedded in IPv6
    follow the same rules as the IPv4 address itself.
    """

    #: 127.0.0.0/8 and ::1: a local development AS, or the operator's own Pod.
    allow_loopback: bool = True
    #: RFC 1918, RFC 6598 and ULA addresses: in-cluster and VPN-reachable servers.
    allow_private: bool = True

    def refusal(self, ip: IPAddress) -> str | None:
        return address_refusal(ip, allow_loopback=self.allow_loopback, allow_private=self.allow_private)


#: Public addresses only: for URLs that someone other than the operator of this process chose (CIMD).
STRICT: Final = AddressPolicy(allow_loopback=False, allow_private=False)
#: For servers the person running clientreg named (CLI, Pulumi): a local dev AS and in-cluster or VPN
#: servers work; link-local and the other never-a-server addresses do not.
USER_CONFIGURED: Final = AddressPolicy(allow_loopback=True, allow_private=True)


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: the only hosts where plain http is tolerated."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a packet to ``ip`` may end up at: mapped, IPv4-compatible, NAT64, 6to4, Teredo."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and ip not in (_IPV6_LOOPBACK, ipaddress.IPv6Address(0))):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [client, server]
    return []


def denied(ip: IPAddress) -> str | None:
    """Why ``ip`` is on the explicit deny-list (an IPv4 address embedded in it included), or None."""
    if ip == _IPV6_LOOPBACK:
        return None  # loopback is the allow_loopback switch's business
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            why = denied(inner)
            if why:
                return f"{why} (embedded in {ip})"
    for network, why in _DENIED:
        if ip.version == network.version and ip in network:
            return why
    return None


def address_refusal(ip: IPAddress, *, allow_loopback: bool = False, allow_private: bool = False) -> str | None:
    """Why ``ip`` must not be connected to, or None when it may be.

    The explicit deny-list comes first and no switch overrides it; the rest of the rules follow the
    ``ipaddress`` module's classification.
    """
    why = denied(ip)
    if why:
        return why
    if isinstance(ip, ipaddress.IPv6Address):
        inners = _embedded_ipv4(ip)
        if inners:
            # The IPv4 address is where the packet goes: its rules, not those of the IPv6 wrapper, apply.
            for inner in inners:
                why = address_refusal(inner, allow_loopback=allow_loopback, allow_private=allow_private)
                if why:
                    return f"{why} (embedded in {ip})"
            return None
        if ip.scope_id:
            return "a scoped IPv6 address"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "the unspecified address"
    if any(ip in network for network in _PRIVATE):
        return None if allow_private else "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a special-purpose address, not globally routable"
    return None


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, allowing a trailing dot and an IPv6 zone index."""
    for candidate in (host, host.rstrip("."), host.split("%", 1)[0]):
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None
