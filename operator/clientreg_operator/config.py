"""How one operator process is configured (command line → :class:`OperatorConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from clientreg.durations import parse_duration
from clientreg.resolve import DEFAULT_CLUSTER_RESOURCE_NAMESPACE
from clientreg.ssrf import AddressPolicy

from .documents import HostBinding

#: ClusterAuthorizationServers are written by the platform team: in-cluster servers on private addresses are
#: normal. Loopback is the operator's own Pod, so only tests (the operator run as a local process) allow it.
DEFAULT_CLUSTER_ADDRESS_POLICY = AddressPolicy(allow_loopback=False, allow_private=True)
#: AuthorizationServers are written by whoever may create them in a namespace, a tenant: public addresses
#: only, or a tenant points the operator at cluster-internal services (server-side request forgery).
DEFAULT_NAMESPACED_ADDRESS_POLICY = AddressPolicy(allow_loopback=False, allow_private=False)


@dataclass(frozen=True)
class ServerAddressPolicies:
    """Which addresses an authorization server may resolve to, by the kind of resource that names it. The
    deny-list of clientreg.ssrf (cloud metadata, link-local, …) applies to both whatever they say."""

    #: ClusterAuthorizationServer (None: unguarded, tests only).
    cluster: AddressPolicy | None = DEFAULT_CLUSTER_ADDRESS_POLICY
    #: AuthorizationServer (None: unguarded, tests only).
    namespaced: AddressPolicy | None = DEFAULT_NAMESPACED_ADDRESS_POLICY

    def for_kind(self, kind: str) -> AddressPolicy | None:
        return self.cluster if kind == "ClusterAuthorizationServer" else self.namespaced


DEFAULT_ADDRESS_POLICIES = ServerAddressPolicies()


def parse_interval(text: str) -> float:
    """A Go duration as seconds; argparse errors name the value."""
    seconds = parse_duration(text).total_seconds()
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


@dataclass(frozen=True)
class OperatorConfig:
    #: Empty: every namespace (cluster-wide watches, as the chart's ClusterRoleBinding allows).
    namespaces: tuple[str, ...] = ()
    cluster_resource_namespace: str = DEFAULT_CLUSTER_RESOURCE_NAMESPACE
    #: Where record Secrets (registration access tokens) live: the operator's own namespace, never a tenant's.
    records_namespace: str = DEFAULT_CLUSTER_RESOURCE_NAMESPACE
    drift_check_interval: float = 600.0
    #: Sharding: only OAuthClients matching this selector are served (server-side filtered).
    label_selector: str | None = None
    leader_election: bool = True
    lease_name: str = "clientreg-operator"
    lease_namespace: str = DEFAULT_CLUSTER_RESOURCE_NAMESPACE
    identity: str = "clientreg-operator"
    lease_duration: float = 15.0
    metrics_address: str | None = None
    probe_address: str | None = None
    restart_deployments: bool = False
    log_format: str = "json"
    log_level: str = "INFO"
    kubeconfig: str | None = None
    #: Failed reconciles retry after min(base * 2**n, max) seconds.
    backoff_base: float = 5.0
    backoff_max: float = 300.0
    #: Reconciles running at once in this process (each AS's maxConcurrency still applies).
    workers: int = 8
    #: Which addresses ClusterAuthorizationServers and AuthorizationServers may resolve to.
    address_policies: ServerAddressPolicies = DEFAULT_ADDRESS_POLICIES
    #: Platform-given hosts of published documents: NAMESPACE=PATTERN (see documents.py for the rule).
    document_hosts: tuple[HostBinding, ...] = ()
    #: Seconds between two lists of the record Secrets (each replica's document index).
    document_sync_interval: float = 5.0
    #: Watch the credentials Secrets (label-selected) and restore a changed one at once. False: no list/watch
    #: on Secrets is needed; the next full reconcile (drift check) restores it.
    watch_credentials: bool = True

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def drift_check(self) -> timedelta:
        return timedelta(seconds=self.drift_check_interval)
