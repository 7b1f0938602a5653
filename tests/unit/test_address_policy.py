"""The address policy for traffic to authorization servers (SSRF), without a network.

Every connection is made through an in-memory network backend that records each attempt and each TLS
server name, and answers HTTP from canned documents: nothing here opens a socket, resolves a name through
DNS, or sends a byte off this process. Refused addresses must show zero attempts.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from support.server_status import ServerStatusCluster

from clientreg import rfc7591
from clientreg.discovery import discover
from clientreg.errors import ClientregError, ConfigurationError, PolicyViolation, TransportError, describe
from clientreg.http import DEFAULT_LIMITS, GuardedTransport, HttpClient, HttpSettings
from clientreg.server import ServerConnection, http_settings_for
from clientreg.spec import AuthorizationServerSpec
from clientreg.ssrf import STRICT, USER_CONFIGURED, AddressPolicy, FetchRefused, address_refusal, fetch_json

IAT = "iat-SECRET-9f8e7d6c5b4a"
OPERATOR = AddressPolicy(allow_loopback=False, allow_private=True)
MULTI_TENANT = AddressPolicy(allow_loopback=False, allow_private=False)
PUBLIC = "93.184.215.14"


# --- an in-memory network -----------------------------------------------------------------------------------

class _Stream(httpcore.NetworkStream):
    def __init__(self, network: MemoryNetwork) -> None:
        self.network = network
        self.sent = b""
        self.answer: bytes | None = None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sent += buffer
        head, sep, body = self.sent.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if len(body) < int(headers.get("content-length", "0")):
            return
        method, target, _ = lines[0].split(" ", 2)
        self.answer = self.network.answer(method, headers.get("host", ""), target, body)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        answer, self.answer = self.answer or b"", b""
        return answer

    def close(self) -> None:
        pass

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self.network.server_names.append(server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class MemoryNetwork(httpcore.NetworkBackend):
    """Records every connection attempt; answers from ``sites`` (Host header → path → JSON) or refuses."""

    def __init__(self, sites: dict[str, dict[str, Any]] | None = None) -> None:
        self.sites = sites or {}
        self.attempts: list[tuple[str, int]] = []
        self.server_names: list[str | None] = []
        self.requests: list[tuple[str, str, str]] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        self.attempts.append((host, port))
        if not self.sites:
            raise httpcore.ConnectError("memory network: nothing listens here")
        return _Stream(self)

    def answer(self, method: str, host: str, target: str, body: bytes) -> bytes:
        self.requests.append((method, host, target))
        document = self.sites.get(host, {}).get(target.split("?")[0])
        status, payload = (200, json.dumps(document).encode()) if document is not None else (404, b"{}")
        if method == "POST" and document is not None:
            status = 201
        return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n").encode() + payload

    def sleep(self, seconds: float) -> None:
        pass


def resolving(table: dict[str, Sequence[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise TransportError(f"cannot resolve {host!r} (test resolver)")
        return list(table[host])
    return resolve


def numeric_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo restricted to numeric hosts: the C library's reading of odd IPv4 spellings, never DNS."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve {host!r} ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def http_client(policy: AddressPolicy | None, network: MemoryNetwork,
                resolver: Callable[[str, int], Sequence[str]] | None = None, **settings: Any) -> HttpClient:
    return HttpClient(HttpSettings(address_policy=policy, retries=settings.pop("retries", 0), **settings),
                      sleep=lambda _s: None, resolver=resolver or resolving({}), network_backend=network)


def assert_clean(exc: BaseException) -> None:
    assert isinstance(exc, ClientregError), f"{type(exc).__name__} escaped: {exc}"
    for text in (str(exc), repr(exc), json.dumps(describe(exc))):
        assert IAT not in text and "Traceback" not in text


# --- the classifier -----------------------------------------------------------------------------------------

# (address, class named in the refusal, refused by the user/CLI policy, by the operator's, by the strict one)
ALWAYS = "always"
CLASSIFIED = [
    ("169.254.169.254", "the cloud metadata service", ALWAYS),
    ("fd00:ec2::254", "the cloud metadata service", ALWAYS),
    ("169.254.1.1", "a link-local address", ALWAYS),
    ("169.254.0.1", "a link-local address", ALWAYS),
    ("fe80::1", "a link-local address", ALWAYS),
    ("::ffff:169.254.169.254", "the cloud metadata service (embedded in", ALWAYS),
    ("64:ff9b::a9fe:a9fe", "the cloud metadata service (embedded in", ALWAYS),
    ("2002:a9fe:a9fe::", "the cloud metadata service (embedded in", ALWAYS),
    ("0.0.0.0", "the unspecified address", ALWAYS),
    ("::", "the unspecified address", ALWAYS),
    ("224.0.0.1", "a multicast address", ALWAYS),
    ("ff02::1", "a multicast address", ALWAYS),
    ("240.0.0.1", "a reserved address", ALWAYS),
    ("255.255.255.255", "a reserved address", ALWAYS),
    ("192.0.2.10", "not globally routable", ALWAYS),
    ("198.18.0.1", "not globally routable", ALWAYS),
    ("0.1.2.3", "not globally routable", ALWAYS),
    ("2001:db8::1", "not globally routable", ALWAYS),
    ("fec0::1", "a site-local address", ALWAYS),
    ("127.0.0.1", "a loopback address", "loopback"),
    ("127.9.9.9", "a loopback address", "loopback"),
    ("::1", "a loopback address", "loopback"),
    ("::ffff:127.0.0.1", "a loopback address (embedded in", "loopback"),
    ("10.0.0.1", "a private address", "private"),
    ("10.255.255.254", "a private address", "private"),
    ("172.16.0.1", "a private address", "private"),
    ("172.31.255.1", "a private address", "private"),
    ("192.168.1.1", "a private address", "private"),
    ("100.64.0.1", "a private address", "private"),
    ("100.127.255.254", "a private address", "private"),
    ("fc00::1", "a private address", "private"),
    ("fd12:3456::1", "a private address", "private"),
    ("::ffff:10.0.0.1", "a private address (embedded in", "private"),
    ("64:ff9b::a00:1", "a private address (embedded in", "private"),
    ("2002:c0a8:101::", "a private address (embedded in", "private"),
]


@pytest.mark.parametrize(("address", "named", "kind"), CLASSIFIED, ids=[c[0] for c in CLASSIFIED])
def test_each_policy_refuses_exactly_its_classes(address: str, named: str, kind: str) -> None:
    ip = ipaddress.ip_address(address)
    for policy in (STRICT, MULTI_TENANT, OPERATOR, USER_CONFIGURED):
        allowed = (kind == "loopback" and policy.allow_loopback) or (kind == "private" and policy.allow_private)
        why = policy.refusal(ip)
        if allowed:
            assert why is None, (policy, why)
        else:
            assert why is not None and named in why, (policy, why)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700::1111",
                                     "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"])
def test_public_addresses_pass_every_policy(address: str) -> None:
    assert all(p.refusal(ipaddress.ip_address(address)) is None for p in (STRICT, OPERATOR, USER_CONFIGURED))


@given(st.ip_addresses(), st.booleans(), st.booleans())
def test_switches_only_ever_allow_more_and_never_link_local(ip: Any, loopback: bool, private: bool) -> None:
    policy = AddressPolicy(allow_loopback=loopback, allow_private=private)
    if STRICT.refusal(ip) is None:
        assert policy.refusal(ip) is None
    if USER_CONFIGURED.refusal(ip) is not None:
        assert policy.refusal(ip) is not None
    embedded = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    for candidate in (ip, embedded):
        if candidate is not None and (candidate.is_link_local or candidate.is_multicast or candidate.is_unspecified):
            assert policy.refusal(ip) is not None
    assert address_refusal(ip, allow_loopback=loopback, allow_private=private) == policy.refusal(ip)


# --- refused before connecting: every way an AS URL can reach a forbidden address ------------------------

HOSTILE_LITERALS = [
    "https://169.254.169.254/register",
    "https://169.254.169.254:8443/latest/meta-data/",
    "https://169.254.169.254./register",
    "https://[fd00:ec2::254]/register",
    "https://[fe80::1]/register",
    "https://[fe80::1%25eth0]/register",
    "https://[::ffff:169.254.169.254]/register",
    "https://[::ffff:a9fe:a9fe]/register",
    "https://[64:ff9b::a9fe:a9fe]/register",
    "https://0.0.0.0/register",
    "https://[::]/register",
    "https://224.0.0.1/register",
    "https://127.0.0.1/register",
    "https://[::1]/register",
    "https://10.0.0.1/register",
    "https://172.16.5.4/register",
    "https://192.168.0.10/register",
    "https://100.64.0.1/register",
    "https://[fc00::1]/register",
]


@pytest.mark.parametrize("url", HOSTILE_LITERALS)
def test_registration_to_a_forbidden_literal_is_refused_without_a_connection(url: str) -> None:
    network = MemoryNetwork()
    with pytest.raises(ClientregError) as caught:
        rfc7591.register(http_client(MULTI_TENANT, network), url, {"client_name": "x"},
                         initial_access_token=SecretStr(IAT))
    assert network.attempts == []
    assert isinstance(caught.value, FetchRefused) and caught.value.rule == "ssrf"
    assert "refused before connecting" in str(caught.value) and "POST" in str(caught.value)
    assert_clean(caught.value)


# Other spellings of 169.254.169.254 and 127.0.0.1: whatever the URL parser and getaddrinfo make of them is
# vetted as the address they make. (Octal with leading zeros is refused by httpx's URL parser already.)
SPELLINGS = [
    ("https://2852039166/register", "169.254.169.254"),
    ("https://0xA9FEA9FE/register", "169.254.169.254"),
    ("https://0xa9.0xfe.0xa9.0xfe/register", "169.254.169.254"),
    ("https://169.254.43518/register", "169.254.169.254"),
    ("https://0x7f.1/register", "127.0.0.1"),
    ("https://127.1/register", "127.0.0.1"),
    ("https://2130706433/register", "127.0.0.1"),
    ("https://0251.0376.0251.0376/register", None),
    ("https://0177.0.0.1/register", None),
]


@pytest.mark.parametrize(("url", "address"), SPELLINGS)
def test_odd_ipv4_spellings_are_vetted_as_the_address_they_become(url: str, address: str | None) -> None:
    network = MemoryNetwork()
    with pytest.raises(ClientregError) as caught:
        rfc7591.register(http_client(OPERATOR, network, numeric_resolver), url, {"client_name": "x"},
                         initial_access_token=SecretStr(IAT))
    assert network.attempts == []
    if address is None:
        assert isinstance(caught.value, ConfigurationError)  # not even a valid URL
    else:
        assert isinstance(caught.value, FetchRefused) and address in str(caught.value)
    assert_clean(caught.value)


NAMES = [
    ("metadata.internal.test", ["169.254.169.254"], "the cloud metadata service"),
    ("imds.test", ["fd00:ec2::254"], "the cloud metadata service"),
    ("link.test", ["169.254.7.7"], "a link-local address"),
    ("mapped.test", ["::ffff:169.254.169.254"], "the cloud metadata service"),
    ("nat64.test", ["64:ff9b::a9fe:a9fe"], "the cloud metadata service"),
    ("zoned.test", ["fe80::1%eth0"], "a link-local address"),
    ("private.test", ["10.1.2.3"], "a private address"),
    ("cgnat.test", ["100.100.1.1"], "a private address"),
    ("ula.test", ["fd00::5"], "a private address"),
    ("localhost.test", ["127.0.0.1"], "a loopback address"),
    ("mixed.test", [PUBLIC, "10.0.0.1"], "a private address"),
    ("mixed-metadata.test", ["2606:4700::1111", PUBLIC, "169.254.169.254"], "the cloud metadata service"),
    ("nothing.test", [], "resolves to no address"),
]


@pytest.mark.parametrize(("host", "addresses", "named"), NAMES, ids=[n[0] for n in NAMES])
def test_names_resolving_to_forbidden_addresses_are_refused_without_a_connection(
        host: str, addresses: list[str], named: str) -> None:
    network = MemoryNetwork()
    http = http_client(MULTI_TENANT, network, resolving({host: addresses}))
    with pytest.raises(FetchRefused) as caught:
        rfc7591.register(http, f"https://{host}/register", {"client_name": "x"}, initial_access_token=SecretStr(IAT))
    assert network.attempts == []
    assert host in str(caught.value) and named in str(caught.value)
    assert_clean(caught.value)


def test_a_refusal_is_never_retried_and_maps_to_policy_violation() -> None:
    network = MemoryNetwork()
    resolves: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolves.append(host)
        return ["169.254.169.254"]

    http = http_client(USER_CONFIGURED, network, resolver, retries=5)
    with pytest.raises(FetchRefused) as caught:
        http.request("GET", "https://as.example.test/.well-known/oauth-authorization-server")
    assert resolves == ["as.example.test"] and network.attempts == []
    assert isinstance(caught.value, PolicyViolation) and caught.value.exit_code == 2
    assert caught.value.reason == "FetchRefused"


def test_allowed_addresses_are_dialled_as_vetted_and_tls_keeps_the_url_host() -> None:
    # httpcore connects to the address the guard vetted, then starts TLS with server_hostname from the URL:
    # SNI and certificate verification are against the name, never against the address.
    network = MemoryNetwork({"as.example.test": {"/.well-known/oauth-authorization-server": {
        "issuer": "https://as.example.test", "registration_endpoint": "https://as.example.test/register",
        "token_endpoint": "https://as.example.test/token"}}})
    http = http_client(MULTI_TENANT, network, resolving({"as.example.test": [PUBLIC]}))
    found = discover(http, "https://as.example.test")
    assert found.server.registration_endpoint == "https://as.example.test/register"
    assert network.attempts == [(PUBLIC, 443)]
    assert network.server_names == ["as.example.test"]


def test_a_dns_failure_is_a_retried_connect_failure_not_a_refusal() -> None:
    network = MemoryNetwork()
    sleeps: list[float] = []
    http = HttpClient(HttpSettings(address_policy=OPERATOR, retries=2), sleep=sleeps.append,
                      resolver=resolving({}), network_backend=network)
    with pytest.raises(TransportError, match="cannot resolve") as caught:
        http.request("GET", "https://gone.test/x")
    assert len(sleeps) == 2 and network.attempts == []
    assert_clean(caught.value)


def test_a_resolver_answering_garbage_is_a_transport_error() -> None:
    http = http_client(OPERATOR, MemoryNetwork(), resolving({"odd.test": ["not-an-address"]}))
    with pytest.raises(TransportError, match="not an IP address"):
        http.request("GET", "https://odd.test/x")


# --- a lying discovery document --------------------------------------------------------------------------

def _lying_issuer(registration_endpoint: str) -> MemoryNetwork:
    return MemoryNetwork({"as.example.test": {"/.well-known/oauth-authorization-server": {
        "issuer": "https://as.example.test", "registration_endpoint": registration_endpoint,
        "token_endpoint": "https://as.example.test/token"}}})


LIES = [
    ("https://169.254.169.254/latest/api/token", USER_CONFIGURED, "the cloud metadata service"),
    ("https://[fd00:ec2::254]/register", USER_CONFIGURED, "the cloud metadata service"),
    ("https://metadata.test/register", USER_CONFIGURED, "the cloud metadata service"),
    ("https://[fe80::a9fe:a9fe]/register", OPERATOR, "a link-local address"),
    ("https://127.0.0.1:9/register", OPERATOR, "a loopback address"),
    ("https://internal.test/register", MULTI_TENANT, "a private address"),
    ("https://10.96.0.1/register", MULTI_TENANT, "a private address"),
]


@pytest.mark.parametrize(("endpoint", "policy", "named"), LIES)
def test_a_discovery_document_pointing_registration_inward_is_refused(
        endpoint: str, policy: AddressPolicy, named: str) -> None:
    network = _lying_issuer(endpoint)
    resolver = resolving({"as.example.test": [PUBLIC], "metadata.test": ["169.254.169.254"],
                          "internal.test": ["10.0.0.8"]})
    spec = AuthorizationServerSpec(issuer="https://as.example.test")
    server = ServerConnection(spec, http_client(policy, network, resolver), name="AuthorizationServer/lying",
                              initial_access_token=SecretStr(IAT))
    with pytest.raises(FetchRefused) as caught:
        rfc7591.register(server.http, server.registration_endpoint, {"client_name": "x"},
                         initial_access_token=server.initial_access_token)
    # Only the issuer's public address was ever dialled; the registration POST (and the IAT) went nowhere.
    assert set(network.attempts) == {(PUBLIC, 443)}
    assert {r[0] for r in network.requests} == {"GET"}
    assert named in str(caught.value)
    assert_clean(caught.value)


# --- CIMD and jwks_uri documents (public addresses only) ---------------------------------------------------

CIMD_URLS = ["https://2852039166/c.json", "https://0xA9FEA9FE/c.json", "https://127.1/c.json",
             "https://[::ffff:7f00:1]/c.json", "https://[64:ff9b::a00:1]/c.json", "https://10.0.0.1/c.json",
             "https://100.64.1.1/c.json", "https://[fc00::1]/c.json"]


@pytest.mark.parametrize("url", CIMD_URLS)
def test_cimd_documents_at_odd_spellings_of_internal_addresses_are_refused(url: str) -> None:
    network = MemoryNetwork()
    with pytest.raises(FetchRefused, match="refused before connecting"):
        fetch_json(url, resolver=numeric_resolver, inner=network)
    assert network.attempts == []


# --- wiring: every front end builds its AS clients with its policy --------------------------------------------

def test_http_client_uses_the_guard_only_under_a_policy() -> None:
    guarded = HttpClient(HttpSettings(address_policy=OPERATOR))
    transport = guarded._client._transport
    assert isinstance(transport, GuardedTransport) and transport.backend.policy == OPERATOR
    assert not isinstance(HttpClient(HttpSettings())._client._transport, GuardedTransport)
    mock = httpx.MockTransport(lambda r: httpx.Response(200))
    # An injected transport is the network (tests): the policy cannot apply to it and does not wrap it.
    assert HttpClient(HttpSettings(address_policy=OPERATOR), transport=mock)._client._transport is mock
    limits = DEFAULT_LIMITS
    assert (limits.max_connections, limits.max_keepalive_connections, limits.keepalive_expiry) == (
        httpx._config.DEFAULT_LIMITS.max_connections, httpx._config.DEFAULT_LIMITS.max_keepalive_connections,
        httpx._config.DEFAULT_LIMITS.keepalive_expiry)


def test_guarded_clients_pickle_with_their_policy() -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(HttpClient(HttpSettings(address_policy=USER_CONFIGURED))))
    assert copy.settings.address_policy == USER_CONFIGURED
    assert isinstance(copy._client._transport, GuardedTransport)


def test_front_end_defaults() -> None:
    from clientreg_operator.config import OperatorConfig
    from clientreg_pulumi import provider

    from clientreg import cli

    assert cli.ADDRESS_POLICY == provider.ADDRESS_POLICY == USER_CONFIGURED
    assert OperatorConfig().address_policies.cluster == OPERATOR
    assert OperatorConfig().address_policies.namespaced == MULTI_TENANT
    spec = AuthorizationServerSpec(issuer="https://as.example.test")
    assert http_settings_for(spec, OPERATOR).address_policy == OPERATOR
    connection = ServerConnection.for_spec(spec)
    assert connection.http.settings.address_policy == USER_CONFIGURED
    connection.close()


LOOPBACK_AND_PRIVATE = AddressPolicy(allow_loopback=True, allow_private=True)
LOOPBACK_ONLY = AddressPolicy(allow_loopback=True, allow_private=False)


@pytest.mark.parametrize(("argv", "cluster", "namespaced"), [
    ([], OPERATOR, MULTI_TENANT),
    (["--allow-loopback-servers"], LOOPBACK_AND_PRIVATE, LOOPBACK_ONLY),
    (["--no-allow-private-servers"], MULTI_TENANT, MULTI_TENANT),
    (["--allow-private-servers"], OPERATOR, MULTI_TENANT),
    (["--allow-private-namespaced-servers"], OPERATOR, OPERATOR),
    (["--no-allow-private-servers", "--allow-private-namespaced-servers"], MULTI_TENANT, OPERATOR),
    (["--allow-loopback-servers", "--no-allow-private-servers"], LOOPBACK_ONLY, LOOPBACK_ONLY),
    (["--allow-loopback-servers", "--allow-private-namespaced-servers"], LOOPBACK_AND_PRIVATE,
     LOOPBACK_AND_PRIVATE),
])
def test_operator_flags_make_one_policy_per_server_kind(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                        cluster: AddressPolicy, namespaced: AddressPolicy) -> None:
    from clientreg_operator import cli, runner

    seen: list[Any] = []
    monkeypatch.setattr(runner, "run", lambda cfg: seen.append(cfg) or 0)
    assert cli.main(["run", "--all-namespaces", *argv]) == 0
    policies = seen[0].address_policies
    assert (policies.cluster, policies.namespaced) == (cluster, namespaced)
    assert (policies.for_kind("ClusterAuthorizationServer"), policies.for_kind("AuthorizationServer")) == (
        cluster, namespaced)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--allow-private-servers=maybe"])
    assert isinstance(cli.build_parser(), argparse.ArgumentParser)


@pytest.mark.parametrize("kind", ["AuthorizationServer", "ClusterAuthorizationServer"])
def test_operator_connections_build_clients_with_the_policy_of_the_server_kind(kind: str) -> None:
    from clientreg_operator.config import ServerAddressPolicies
    from clientreg_operator.connections import Connections

    class Cluster:
        def get_server(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
            return {"apiVersion": "clientreg.dev/v1alpha1", "kind": kind,
                    "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
                    "spec": {"registrationEndpoint": "https://10.0.0.1/register"}}

        def get_secret(self, namespace: str, name: str) -> None:
            return None

    built: list[HttpSettings] = []

    def factory(settings: HttpSettings, server: str) -> HttpClient:
        built.append(settings)
        return HttpClient(settings)

    from clientreg.spec import OAuthClient, parse_document

    client = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                             "metadata": {"name": "c", "namespace": "t"},
                             "spec": {"serverRef": {"kind": kind, "name": "as"},
                                      "grantTypes": ["client_credentials"]}})
    assert isinstance(client, OAuthClient)
    policies = ServerAddressPolicies(cluster=OPERATOR, namespaced=MULTI_TENANT)
    connections = Connections(Cluster(), cluster_resource_namespace="clientreg",  # type: ignore[arg-type]
                              http_factory=factory, address_policies=policies)
    connections.connect(client)
    connections.close()
    assert [s.address_policy for s in built] == [policies.for_kind(kind)]
    assert built[0].address_policy == (OPERATOR if kind == "ClusterAuthorizationServer" else MULTI_TENANT)


@pytest.mark.parametrize("kind", ["AuthorizationServer", "ClusterAuthorizationServer"])
def test_deleting_a_client_whose_server_is_gone_keeps_the_policy_of_its_server_kind(kind: str) -> None:
    """A platform's ClusterAuthorizationServer at a private address must still be able to delete its clients
    after the resource is gone; a tenant's AuthorizationServer keeps the strict policy."""
    from clientreg_operator.config import ServerAddressPolicies
    from clientreg_operator.connections import Connections

    from clientreg.record import RegistrationRecord

    policies = ServerAddressPolicies(cluster=OPERATOR, namespaced=MULTI_TENANT)
    connections = Connections(object(), cluster_resource_namespace="clientreg",  # type: ignore[arg-type]
                              address_policies=policies, get_server=lambda *_: None)
    record = RegistrationRecord(client_id="c1", registration_endpoint="https://10.0.0.1/register")
    server = connections.from_record(record, kind)
    try:
        assert server.http.settings.address_policy == policies.for_kind(kind)
        assert server.registration_endpoint == "https://10.0.0.1/register"
    finally:
        server.close()


SERVER_ISSUERS = ["https://169.254.169.254", "https://[fd00:ec2::254]", "https://[fe80::1]", "https://0.0.0.0",
                  "https://224.0.0.1", "https://127.0.0.1:8443", "https://[::ffff:169.254.169.254]"]


@pytest.mark.parametrize("issuer", SERVER_ISSUERS)
def test_authorization_server_status_reports_a_refused_issuer(issuer: str) -> None:
    from clientreg_operator.servers import check_server

    cluster = ServerStatusCluster()
    patches = cluster.patches

    body = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
            "metadata": {"name": "evil", "namespace": "tenant", "generation": 1}, "spec": {"issuer": issuer}}
    # The operator's default policy: IP literals are refused before any resolution or connection.
    error = check_server(cluster, body, cluster_resource_namespace="clientreg")  # type: ignore[arg-type]
    assert isinstance(error, FetchRefused)
    ready = patches[0]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "FetchRefused")
    assert "refused before connecting" in ready["message"] and "Traceback" not in ready["message"]


# --- real TLS on loopback: the certificate is checked against the URL's name, not the dialled address -----

def _tls_server(tmp_path: Any, dns_name: str) -> tuple[Any, str]:
    import datetime as dt
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            # A name only, no IP address: verification against 127.0.0.1 would fail.
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp_path / "c.pem").write_text(pem)
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, pem


@pytest.mark.parametrize(("cert_name", "ok"), [("localhost", True), ("someone-else.test", False)])
def test_tls_through_the_guard_verifies_the_url_host(tmp_path: Any, cert_name: str, ok: bool) -> None:
    server, pem = _tls_server(tmp_path, cert_name)
    port = server.server_address[1]
    try:
        with HttpClient(HttpSettings(address_policy=USER_CONFIGURED, ca_bundle=pem, retries=0),
                        resolver=resolving({"localhost": ["127.0.0.1"]})) as http:
            if ok:
                assert http.request("GET", f"https://localhost:{port}/x").status_code == 200
            else:
                with pytest.raises(TransportError, match="TLS with localhost failed"):
                    http.request("GET", f"https://localhost:{port}/x")
        with HttpClient(HttpSettings(address_policy=OPERATOR, ca_bundle=pem, retries=0),
                        resolver=resolving({"localhost": ["127.0.0.1"]})) as http, \
                pytest.raises(FetchRefused, match="a loopback address"):
            http.request("GET", f"https://localhost:{port}/x")
    finally:
        server.shutdown()
        server.server_close()
