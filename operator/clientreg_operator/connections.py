"""Authorization servers as the reconcile threads share them: one HTTP client per AS, a concurrency cap.

The HTTP client carries the AS's rate limit (``spec.requestsPerSecond``), so it must be shared by every
OAuthClient registered there; it is rebuilt when the AS's spec changes (its generation). So is the AS's
discovery: one per AS (and per DISCOVERY_TTL), not one per registration. The concurrency cap
(``spec.maxConcurrency``) bounds the reconciles talking to one AS at once. Namespace isolation is the
core's :func:`clientreg.resolve.resolve_server`; this module only looks things up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kubernetes.client.exceptions import ApiException

from clientreg.errors import ConfigurationError, DependencyNotReady
from clientreg.http import HttpClient, HttpSettings
from clientreg.record import RegistrationRecord
from clientreg.resolve import resolve_server, server_key
from clientreg.server import ServerConnection, http_settings_for
from clientreg.spec import (
    AuthorizationServer,
    AuthorizationServerSpec,
    ClusterAuthorizationServer,
    OAuthClient,
    parse_document,
)
from clientreg_kube.cluster import Body, Cluster
from clientreg_kube.secrets import decode

from .config import DEFAULT_ADDRESS_POLICIES, ServerAddressPolicies

log = logging.getLogger(__name__)

ServerKey = tuple[str, str, str]
#: Seconds one discovery serves every reconcile against its AS: an AS may move its endpoints without its
#: AuthorizationServer resource changing, so the metadata is read again now and then.
DISCOVERY_TTL = 600.0
#: Builds the HTTP client of one AS; ``server`` labels its metrics.
HttpFactory = Callable[[HttpSettings, str], HttpClient]


def default_http_factory(settings: HttpSettings, server: str) -> HttpClient:
    return HttpClient(settings)


@dataclass
class _Shared:
    version: str
    http: HttpClient
    slots: threading.BoundedSemaphore | None
    #: The ServerConnection every client of the AS shares (resolve_server's cache): one discovery, and one
    #: remembered discovery failure, instead of one per reconcile (measured: a slow AS took two requests per
    #: registration, and a down one a full retry budget per waiting client).
    connections: dict[ServerKey, ServerConnection] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


class Connections:
    def __init__(self, cluster: Cluster, *, cluster_resource_namespace: str,
                 http_factory: HttpFactory = default_http_factory,
                 address_policies: ServerAddressPolicies = DEFAULT_ADDRESS_POLICIES,
                 get_server: Callable[[str, str | None, str], Body | None] | None = None) -> None:
        self.cluster = cluster
        #: Where (Cluster)AuthorizationServers are read: the operator's watch cache (watches.ServerCache).
        self.get_server = get_server or cluster.get_server
        self.cluster_resource_namespace = cluster_resource_namespace
        self.http_factory = http_factory
        #: Every connection to an AS of this operator goes through the policy of its kind.
        self.address_policies = address_policies
        self._shared: dict[ServerKey, _Shared] = {}
        self._lock = threading.Lock()

    def _server_spec(self, key: ServerKey) -> tuple[AuthorizationServerSpec | None, str]:
        kind, namespace, name = key
        body = self.get_server(kind, namespace or None, name)
        if body is None:
            return None, ""
        document = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
        parsed = parse_document(document, source=f"{kind}/{name}")
        assert isinstance(parsed, AuthorizationServer | ClusterAuthorizationServer)
        # The generation, not the resourceVersion: every status write (the operator's own server checks) bumps
        # the latter, and rebuilding closes the old client under requests in flight, so a registration the AS
        # answered would be lost (found by tests/e2e/test_operator_faults.py, slow AS).
        meta = body["metadata"]
        return parsed.spec, str(meta.get("generation") or meta.get("resourceVersion", ""))

    def _find_secret(self, namespace: str, name: str, key: str) -> str | None:
        return decode(self.cluster.get_secret(namespace, name)).get(key)

    def _namespace_labels(self, name: str) -> dict[str, str] | None:
        try:
            body = self.cluster.get_namespace(name)
        except ApiException as exc:
            if exc.status != 403:
                raise
            # RBAC from an older chart: say what is missing instead of failing every reconcile with a traceback.
            raise DependencyNotReady(f"cannot read Namespace {name} (HTTP 403) to match a ClusterAuthorizationServer's "
                                     "spec.allowedNamespaces.selector: the operator needs get on namespaces") from None
        return None if body is None else dict((body.get("metadata") or {}).get("labels") or {})

    def connect(self, client: OAuthClient) -> tuple[ServerConnection, ServerKey]:
        """The ServerConnection for ``client``'s serverRef. Raises ConfigurationError / DependencyNotReady."""
        key = server_key(client)
        spec, version = self._server_spec(key)
        shared = self._shared_for(key, version, spec) if spec is not None else None
        cache = None
        if shared is not None:
            with self._lock:
                if time.monotonic() - shared.since > DISCOVERY_TTL:
                    shared.connections, shared.since = {}, time.monotonic()
                cache = shared.connections
        # resolve_server owns the isolation rules (which namespace, which Secrets); it gets the document
        # fetched above so the shared HTTP client and the spec always belong together. The credentials it
        # hands the connection are loaders: a cached connection still reads the current Secret.
        conn = resolve_server(client, lambda _kind, _namespace, _name: spec, self._find_secret,
                              cluster_resource_namespace=self.cluster_resource_namespace,
                              http=shared.http if shared else None, cache=cache,
                              namespace_labels=self._namespace_labels)
        return conn, key

    def _shared_for(self, key: ServerKey, version: str, spec: AuthorizationServerSpec) -> _Shared:
        with self._lock:
            shared = self._shared.get(key)
            if shared is None or shared.version != version:
                if shared is not None:
                    shared.http.close()
                try:
                    label = f"{key[0]}/{key[1] + '/' if key[1] else ''}{key[2]}"
                    policy = self.address_policies.for_kind(key[0])
                    http = self.http_factory(http_settings_for(spec, policy), label)
                except ConfigurationError as exc:
                    raise ConfigurationError(str(exc), document=f"{key[0]}/{key[2]}") from None
                slots = threading.BoundedSemaphore(spec.max_concurrency) if spec.max_concurrency else None
                shared = _Shared(version, http, slots)
                self._shared[key] = shared
            return shared

    @contextlib.contextmanager
    def slot(self, key: ServerKey) -> Iterator[None]:
        """Hold one of the AS's maxConcurrency slots for the duration of a reconcile."""
        shared = self._shared.get(key)
        slots = shared.slots if shared else None
        if slots is None:
            yield
            return
        with slots:
            yield

    def from_record(self, record: RegistrationRecord, kind: str) -> ServerConnection:
        """A connection to where ``record``'s client lives, for deleting it when its server resource is gone
        (or no longer admits the namespace). ``kind`` is the OAuthClient's ``serverRef.kind``, which cannot
        change once a client is registered (a CEL rule, and the loop refuses another server's record): the
        endpoints were chosen by an AS of that kind, so that kind's address policy applies. A platform's
        ClusterAuthorizationServer at a private address can still delete its clients after it is gone."""
        endpoint = record.registration_endpoint or record.registration_client_uri or record.issuer
        if not endpoint:
            raise ConfigurationError(f"the server of client {record.client_id} is gone and the record does not "
                                     "say where it lived: set deletionPolicy: Orphan to let the resource go")
        log.warning("server of client %s is gone; deleting it with default HTTP settings", record.client_id)
        return ServerConnection.for_spec(AuthorizationServerSpec(registration_endpoint=endpoint),
                                         name="(deleted server)", address_policy=self.address_policies.for_kind(kind))

    def close(self) -> None:
        with self._lock:
            for shared in self._shared.values():
                shared.http.close()
            self._shared.clear()

