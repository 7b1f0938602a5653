"""The explicit deny-list of never-a-server addresses (clientreg.ssrf), without a network.

Each address is refused under the loosest policy there is (loopback and private allowed), in every IPv6
spelling that can carry it, and whatever this Python's ``ipaddress`` tables say: the tables are replaced
by ones that call every address public and see nothing special. A recording network backend proves that
no connection is attempted; nothing here resolves a name or opens a socket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore
import pytest

from clientreg.ssrf import STRICT, USER_CONFIGURED, AddressPolicy, FetchRefused, GuardedBackend, address_refusal

LOOSEST = AddressPolicy(allow_loopback=True, allow_private=True)

# (address, what the refusal names)
DENIED = [
    ("169.254.169.254", "the cloud metadata service"),
    ("169.254.170.2", "the cloud metadata service"),
    ("100.100.100.200", "the cloud metadata service"),
    ("192.0.0.192", "the cloud metadata service"),
    ("fd00:ec2::254", "the cloud metadata service"),
    ("169.254.0.0", "a link-local address"),
    ("169.254.0.1", "a link-local address"),
    ("169.254.255.255", "a link-local address"),
    ("169.254.42.7", "a link-local address"),
    ("0.0.0.0", "the unspecified address"),
    ("0.0.0.1", "'this network'"),
    ("0.255.255.255", "'this network'"),
    ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("192.0.0.255", "IETF protocol assignments"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.254", "benchmarking"),
    ("240.0.0.1", "a reserved address"),
    ("254.1.2.3", "a reserved address"),
    ("255.255.255.255", "limited broadcast"),
    ("::", "the unspecified address"),
    ("::a9fe:a9fe", "the cloud metadata service"),
    ("::5db8:d70e", "IPv4-compatible"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("::ffff:0:a9fe:a9fe", "IPv4-translated"),
]

IPV4_DENIED = [address for address, _ in DENIED if ipaddress.ip_address(address).version == 4]


def _mapped(v4: str) -> str:
    return f"::ffff:{v4}"


def _nat64(v4: str) -> str:
    return str(ipaddress.IPv6Address(int(ipaddress.ip_network("64:ff9b::/96").network_address)
                                     | int(ipaddress.IPv4Address(v4))))


def _6to4(v4: str) -> str:
    return str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(v4)) << 80)))


def _teredo_client(v4: str) -> str:
    # RFC 4380 §4: 2001:0::/32, the server's IPv4 address, flags, port, then the client's address inverted.
    server = int(ipaddress.IPv4Address("93.184.215.14"))
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (server << 64) | (~int(ipaddress.IPv4Address(v4))
                                                                             & 0xFFFFFFFF)))


def _teredo_server(v4: str) -> str:
    client = ~int(ipaddress.IPv4Address("93.184.215.14")) & 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (int(ipaddress.IPv4Address(v4)) << 64) | client))


EMBEDDINGS = [(wrap.__name__.strip("_"), wrap(v4), v4) for v4 in IPV4_DENIED
              for wrap in (_mapped, _nat64, _6to4, _teredo_client, _teredo_server)]


class RecordingBackend(httpcore.NetworkBackend):
    """Fails the test on any connection attempt: a refused address must never be dialled."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        self.attempts.append((host, port))
        raise httpcore.ConnectError("recording backend: never connects")


@pytest.fixture
def ipaddress_says_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``ipaddress`` tables of a Python that knows no special-purpose range at all."""
    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        for name in ("is_private", "is_reserved", "is_link_local", "is_multicast", "is_unspecified",
                     "is_loopback", "is_site_local"):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, property(lambda self: False))
        monkeypatch.setattr(cls, "is_global", property(lambda self: True))
    assert ipaddress.ip_address("169.254.169.254").is_global


@pytest.mark.parametrize(("address", "named"), DENIED, ids=[d[0] for d in DENIED])
def test_each_denied_address_is_refused_by_every_policy(address: str, named: str) -> None:
    ip = ipaddress.ip_address(address)
    for policy in (LOOSEST, USER_CONFIGURED, STRICT):
        why = policy.refusal(ip)
        assert why is not None and named in why, (policy, why)


@pytest.mark.parametrize(("address", "named"), DENIED, ids=[d[0] for d in DENIED])
def test_the_deny_list_does_not_depend_on_the_ipaddress_tables(ipaddress_says_public: None, address: str,
                                                               named: str) -> None:
    why = address_refusal(ipaddress.ip_address(address), allow_loopback=True, allow_private=True)
    assert why is not None and named in why


@pytest.mark.parametrize(("form", "address", "v4"), EMBEDDINGS, ids=[f"{e[0]}-{e[2]}" for e in EMBEDDINGS])
def test_denied_ipv4_addresses_embedded_in_ipv6_are_refused(ipaddress_says_public: None, form: str, address: str,
                                                            v4: str) -> None:
    ip = ipaddress.ip_address(address)
    why = address_refusal(ip, allow_loopback=True, allow_private=True)
    expected = dict(DENIED)[v4]
    assert why is not None and why.index(expected) < why.index(f"(embedded in {ip})")


@pytest.mark.parametrize("address", [d[0] for d in DENIED] + [e[1] for e in EMBEDDINGS])
def test_a_denied_literal_is_never_dialled(address: str) -> None:
    inner = RecordingBackend()
    backend = GuardedBackend(LOOSEST, resolver=lambda host, port: pytest.fail("a literal is never resolved"),
                             inner=inner)
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(FetchRefused, match="refused before connecting"):
        backend.connect_tcp(host, 443)
    assert inner.attempts == []


@pytest.mark.parametrize("address", [d[0] for d in DENIED] + [e[1] for e in EMBEDDINGS])
def test_a_name_resolving_to_a_denied_address_is_never_dialled(address: str) -> None:
    inner = RecordingBackend()
    backend = GuardedBackend(LOOSEST, resolver=lambda host, port: ["10.0.0.7", address], inner=inner)
    with pytest.raises(FetchRefused, match=r"as\.internal\.test"):
        backend.connect_tcp("as.internal.test", 443)
    assert inner.attempts == []


@pytest.mark.parametrize(("address", "private"), [
    ("100.100.100.199", True), ("100.100.100.201", True), ("fd00:ec2::253", True),
    ("169.253.255.255", False), ("169.255.0.1", False), ("198.17.255.255", False), ("198.20.0.1", False),
])
def test_the_neighbours_of_denied_addresses_follow_the_ordinary_rules(address: str, private: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert LOOSEST.refusal(ip) is None
    assert (STRICT.refusal(ip) is not None) is private


def test_loopback_stays_the_loopback_switchs_business() -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        ip = ipaddress.ip_address(address)
        assert LOOSEST.refusal(ip) is None
        assert STRICT.refusal(ip) is not None and "loopback" in (STRICT.refusal(ip) or "")
