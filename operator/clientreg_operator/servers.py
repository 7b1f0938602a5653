"""Status of AuthorizationServer and ClusterAuthorizationServer: can clients register there?

cert-manager's Issuer Ready condition: the server's metadata was discovered (or its registration
endpoint is given) and its initial access token Secret exists. A failing server is looked at again with
backoff by kopf; clients referencing it report their own conditions either way. kstatus's Stalled or
Reconciling accompany a Ready=False, by the same table as clients' (status.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clientreg.errors import ClientregError, ConfigurationError, DependencyNotReady
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServer, ClusterAuthorizationServer, parse_document
from clientreg_kube.cluster import Body, Cluster
from clientreg_kube.secrets import decode

from . import status as st
from .config import DEFAULT_ADDRESS_POLICIES, ServerAddressPolicies


def check_server(cluster: Cluster, body: Body, *, cluster_resource_namespace: str,
                 address_policies: ServerAddressPolicies = DEFAULT_ADDRESS_POLICIES) -> ClientregError | None:
    """Work out and write the server's status; returns the error that kept it from Ready, if any."""
    meta = body["metadata"]
    kind, namespace, name = body["kind"], meta.get("namespace"), meta["name"]
    now = datetime.now(UTC)
    facts: dict[str, Any] = {}
    error: ClientregError | None = None
    try:
        document = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
        parsed = parse_document(document)
        assert isinstance(parsed, AuthorizationServer | ClusterAuthorizationServer)
        spec = parsed.spec
        secret_namespace = namespace or cluster_resource_namespace
        for field, ref in (("initialAccessToken", spec.initial_access_token),
                           ("softwareStatement", spec.software_statement)):
            if ref is not None and decode(cluster.get_secret(secret_namespace, ref.secret_key_ref.name)).get(
                    ref.secret_key_ref.key) is None:
                raise DependencyNotReady(f"waiting for Secret {secret_namespace}/{ref.secret_key_ref.name} key "
                                         f"{ref.secret_key_ref.key!r} (spec.{field})")
        # The same policy as the reconciles: a server refused there must not be Ready here.
        connection = ServerConnection.for_spec(spec, name=f"{kind}/{name}",
                                               address_policy=address_policies.for_kind(kind))
        try:
            facts = {"issuer": connection.issuer, "registrationEndpoint": connection.registration_endpoint,
                     "tokenEndpoint": connection.token_endpoint}
        finally:
            connection.close()
    except ConfigurationError as exc:
        error = exc
    except ClientregError as exc:
        error = exc
    previous = (body.get("status") or {}).get("conditions") or []
    generation = meta.get("generation")
    if error is None:
        ready = st.condition(st.READY, "True", "Discovered", "clients can register here", generation=generation,
                             previous=previous, now=now)
    else:
        reason = "Waiting" if isinstance(error, DependencyNotReady) else error.reason
        ready = st.condition(st.READY, "False", reason, error.summary(), generation=generation, previous=previous,
                             now=now)
    progress = st.progress(ready["reason"], ready["message"], settled=error is None, generation=generation,
                           previous=previous, now=now)
    new = st.with_conditions({k: v for k, v in facts.items() if v}, [ready, *progress], generation)
    patch = st.status_patch(body.get("status"), new)
    if patch is not None:
        cluster.patch_server_status(kind, namespace, name, patch)
    return error
