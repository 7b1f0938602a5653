"""Status of AuthorizationServer and ClusterAuthorizationServer: can clients register there?

cert-manager's Issuer Ready condition: the server's metadata was discovered (or its registration
endpoint is given) and its initial access token Secret exists. A failing server is looked at again after
a delay (:class:`ServerChecker`); clients referencing it report their own conditions either way. kstatus's Stalled or
Reconciling accompany a Ready=False, by the same table as clients' (status.py).
"""

from __future__ import annotations

import asyncio
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


class ServerChecker:
    """Writes (Cluster)AuthorizationServer status on every watch event of one (the first list included); a
    failing server is looked at again after a delay. Its own status write comes back as an event and is
    checked once more, with nothing left to write."""

    def __init__(self, cluster: Cluster, *, cluster_resource_namespace: str, retry_after: float = 30.0,
                 address_policies: ServerAddressPolicies = DEFAULT_ADDRESS_POLICIES) -> None:
        self.cluster = cluster
        self.cluster_resource_namespace = cluster_resource_namespace
        self.address_policies = address_policies
        self.retry_after = retry_after
        self._retries: dict[tuple[str, str | None, str], asyncio.Task[None]] = {}
        self._checks: set[asyncio.Task[None]] = set()

    def notify(self, kind: str, body: Body, old: Body | None = None) -> None:
        """The informer's handler: the check runs as its own task (it reads Secrets and the AS's metadata)."""
        task = asyncio.get_running_loop().create_task(self.on_event(kind, body))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def on_event(self, type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(body.get("kind")), meta.get("namespace"), str(meta.get("name")))
        retry = self._retries.pop(key, None)
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
        if type == "DELETED" or meta.get("deletionTimestamp"):
            return
        await self._check(key, body)

    async def _check(self, key: tuple[str, str | None, str], body: dict[str, Any]) -> None:
        error: Exception | None
        try:
            error = await asyncio.to_thread(check_server, self.cluster, body,
                                            cluster_resource_namespace=self.cluster_resource_namespace,
                                            address_policies=self.address_policies)
        except Exception as exc:  # e.g. the API server briefly unreachable: look again later
            error = exc
        if error is not None:
            self._retries[key] = asyncio.create_task(self._again(key))

    async def _again(self, key: tuple[str, str | None, str]) -> None:
        # A later Secret or a reachable server turns it Ready (the IAT Secret is not watched).
        await asyncio.sleep(self.retry_after)
        if self._retries.get(key) is not asyncio.current_task():
            return  # superseded by a newer event
        del self._retries[key]
        kind, namespace, name = key
        try:
            body = await asyncio.to_thread(self.cluster.get_server, kind, namespace, name)
        except Exception:  # the API server briefly unreachable: try again later
            self._retries[key] = asyncio.create_task(self._again(key))
            return
        if body is not None:
            await self._check(key, body)

    def close(self) -> None:
        for task in [*self._retries.values(), *self._checks]:
            task.cancel()
