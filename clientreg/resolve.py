"""Turning an OAuthClient's ``serverRef`` into a :class:`ServerConnection`, for any front end.

Namespace isolation lives here: an OAuthClient may name an AuthorizationServer of its own namespace
or a ClusterAuthorizationServer whose ``spec.allowedNamespaces`` admits its namespace; Secrets come from
the client's namespace, or for a cluster server from the cluster resource namespace (cert-manager's
rule). Front ends differ only in how they look documents, Secrets and namespace labels up.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from .errors import ConfigurationError, DependencyNotReady, NamespaceNotAllowed
from .http import HttpClient
from .server import ServerConnection
from .spec import AuthorizationServerSpec, ClusterAuthorizationServerSpec, OAuthClient, SecretRef
from .ssrf import USER_CONFIGURED, AddressPolicy
from .tenancy import NamespaceLabels, namespace_refusal

DEFAULT_CLUSTER_RESOURCE_NAMESPACE = "clientreg"

#: (namespace, name, key) → the value, or None when the Secret or key does not exist.
SecretLookup = Callable[[str, str, str], str | None]


#: (kind, namespace or None for cluster-scoped, name) → the server's spec, or None when it does not exist.
ServerLookup = Callable[[str, str | None, str], AuthorizationServerSpec | None]


def server_key(client: OAuthClient) -> tuple[str, str, str]:
    ref = client.spec.server_ref
    ns = "" if ref.kind == "ClusterAuthorizationServer" else (client.metadata.namespace or "default")
    return (ref.kind, ns, ref.name)


def resolve_server(client: OAuthClient, find_server: ServerLookup, find_secret: SecretLookup, *,
                   cluster_resource_namespace: str = DEFAULT_CLUSTER_RESOURCE_NAMESPACE,
                   http: HttpClient | None = None,
                   on_response: Callable[[str, str, int], None] | None = None,
                   cache: dict[tuple[str, str, str], ServerConnection] | None = None,
                   address_policy: AddressPolicy | None = USER_CONFIGURED,
                   namespace_labels: NamespaceLabels | None = None) -> ServerConnection:
    """``namespace_labels`` is asked only when a ClusterAuthorizationServer's allowedNamespaces selector
    decides (None: labels are unknown, only allowedNamespaces.names admits a namespace). A namespace that
    is not admitted raises NamespaceNotAllowed before anything is read or sent: the cache is shared by all
    namespaces, so it is consulted only after the check."""
    kind, ns, name = server_key(client)
    spec = find_server(kind, ns or None, name)
    label = f"OAuthClient/{client.metadata.name}"
    if spec is None:
        where = f"namespace {ns!r}" if ns else "the cluster"
        raise ConfigurationError(f"{kind} {name!r} does not exist in {where}", document=label,
                                 field="spec.serverRef", rule="an OAuthClient references an AuthorizationServer "
                                 "of its own namespace or a ClusterAuthorizationServer")
    if isinstance(spec, ClusterAuthorizationServerSpec):
        namespace = client.metadata.namespace or "default"
        why = namespace_refusal(spec.allowed_namespaces, namespace, namespace_labels)
        if why is not None:
            raise NamespaceNotAllowed(f"{kind} {name!r} does not admit namespace {namespace!r}: {why}",
                                      document=label, field="spec.serverRef",
                                      rule=f"{kind}.spec.allowedNamespaces")
    if cache is not None and (kind, ns, name) in cache:
        return cache[(kind, ns, name)]
    secret_ns = ns or cluster_resource_namespace
    owner = f"{kind}/{name}"

    def iat() -> SecretStr | None:
        return _secret(spec.initial_access_token, secret_ns, find_secret, owner, "initialAccessToken")

    def statement() -> str | None:
        value = _secret(spec.software_statement, secret_ns, find_secret, owner, "softwareStatement")
        return value.get_secret_value() if value else None

    conn = ServerConnection.for_spec(spec, name=owner, initial_access_token=iat, software_statement=statement,
                                     http=http, on_response=on_response, address_policy=address_policy)
    if cache is not None:
        cache[(kind, ns, name)] = conn
    return conn


def _secret(ref: SecretRef | None, namespace: str, find_secret: SecretLookup, owner: str,
            field: str) -> SecretStr | None:
    if ref is None:
        return None
    sel = ref.secret_key_ref
    value = find_secret(namespace, sel.name, sel.key)
    if value is None:
        raise DependencyNotReady(f"{owner}: waiting for Secret {namespace}/{sel.name} key {sel.key!r} "
                                 f"(spec.{field}); nothing is registered without it")
    return SecretStr(value.strip())
