"""One apply (or plan) over a document set: the CLI's driver of the core's reconcile loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import publish, report
from ..documents import DEFAULT_NAMESPACE, DocumentSet
from ..engine import Desired, Outcome, Plan, Reason, fetch_published, observe, plan, reconcile
from ..errors import ClientregError, ConfigurationError
from ..http import HttpClient, HttpSettings
from ..record import RegistrationRecord
from ..resolve import resolve_server, server_key
from ..server import ServerConnection
from ..spec import AuthorizationServerSpec, OAuthClient
from ..store import Entry, LocalStore
from ._common import ADDRESS_POLICY, ATTENTION_EXIT, Result, adopt_hint, log


def _find_server(docs: DocumentSet) -> Callable[[str, str | None, str], AuthorizationServerSpec | None]:
    def find(kind: str, namespace: str | None, name: str) -> AuthorizationServerSpec | None:
        if kind == "ClusterAuthorizationServer":
            cluster = docs.cluster_servers.get(name)
            return cluster.spec if cluster else None
        server = docs.servers.get((namespace or DEFAULT_NAMESPACE, name))
        return server.spec if server else None
    return find


def _find_secret(docs: DocumentSet) -> Callable[[str, str, str], str | None]:
    def find(namespace: str, name: str, key: str) -> str | None:
        secret = docs.secrets.get((namespace, name))
        return secret.data.get(key) if secret else None
    return find


def _status(outcome: Outcome) -> dict[str, Any]:
    """What `clientreg get` shows: the state the run left, through clientreg.report (shared by every front
    end); as in apply's table, the reason of a run that ended in sync says why it acted."""
    record = outcome.record
    status = report.of_outcome(outcome)
    return {
        "ready": status.ready, "synced": status.synced, "reason": status.headline,
        "message": status.message, "clientId": record.client_id if record else None,
        "secretExpiresAt": record.client_secret_expires_at if record else None,
        "lastRotation": record.last_rotation.isoformat() if record and record.last_rotation else None,
        "nextAction": status.next_due.isoformat() if status.next_due else None,
        "updatedAt": datetime.now(UTC).isoformat(),
    }


def _without_time(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "updatedAt"}


class Runner:
    """One apply (or plan) over a document set, sharing server connections and the state lock."""

    def __init__(self, docs: DocumentSet, store: LocalStore, *, cluster_ns: str,
                 http_settings: HttpSettings | None = None, publish_dir: Path | None = None) -> None:
        self.docs, self.store, self.cluster_ns = docs, store, cluster_ns
        self.http_settings = http_settings
        self.publish_dir = publish_dir
        self.connections: dict[tuple[str, str, str], ServerConnection] = {}
        self._connections_lock = threading.Lock()
        # Published documents (CIMD, JWKS at jwks_uri) live on the client's web host, not at an AS.
        self.documents_http = HttpClient(HttpSettings(retries=1, max_body_bytes=256 * 1024,
                                                      address_policy=ADDRESS_POLICY))
        self.fetch = fetch_published(self.documents_http)

    def check_references(self, clients: Iterable[OAuthClient]) -> None:
        """Every serverRef of the clients at hand resolves before anything is sent: no half-applied folder
        over a typo. Only theirs: ``apply NAME`` is not blocked by another document's mistake."""
        for client in clients:
            kind, ns, name = client.spec.server_ref.kind, client.metadata.namespace or DEFAULT_NAMESPACE, \
                client.spec.server_ref.name
            found = self.docs.cluster_servers.get(name) if kind == "ClusterAuthorizationServer" \
                else self.docs.servers.get((ns, name))
            if found is None:
                where = "" if kind == "ClusterAuthorizationServer" else f" in namespace {ns!r}"
                raise ConfigurationError(
                    f"{kind} {name!r} is not defined{where} in the applied files",
                    source=self.docs.sources.get(("OAuthClient", ns, client.metadata.name)),
                    document=f"OAuthClient/{client.metadata.name}", field="spec.serverRef.name",
                    rule="an OAuthClient references an AuthorizationServer of its own namespace or a "
                         "ClusterAuthorizationServer")

    def connection(self, client: OAuthClient) -> ServerConnection:
        # One connection per AS for the whole run, even when the first clients of a concurrent apply
        # arrive together: else each worker discovers on its own and gets its own rate-limit bucket.
        with self._connections_lock:
            # resolve_server returns the cached connection, but only after checking the namespace may use it.
            cached = self.connections.get(server_key(client))
            http = HttpClient(self.http_settings) if self.http_settings is not None and cached is None else None
            return resolve_server(client, _find_server(self.docs), _find_secret(self.docs),
                                  cluster_resource_namespace=self.cluster_ns, cache=self.connections, http=http,
                                  address_policy=ADDRESS_POLICY)

    def apply_one(self, client: OAuthClient, *, deleting: bool = False,
                  rotation_request: str | None = None) -> Result:
        ns, name = client.metadata.namespace or DEFAULT_NAMESPACE, client.metadata.name
        entry = self.store.load(ns, name)
        request = rotation_request or entry.requests.get("rotation")
        desired = Desired.from_client(client, deleting=deleting, rotation_request=request)
        try:
            server = self.connection(client)
            _, outcome = reconcile(desired, entry.record, server, self._saver(entry, desired), fetch=self.fetch)
            if self.publish_dir is not None and outcome.record is not None:
                written = publish.write_tree(self.publish_dir, publish.documents(outcome.record))
                for path in written:
                    log.info("%s/%s: wrote %s", ns, name, path)
                if written and not outcome.ready and \
                        outcome.reason in (Reason.DOCUMENT_NOT_PUBLISHED, Reason.DOCUMENT_DIFFERS):
                    # Served straight from the folder (a dev host, a synced bucket): check once more now.
                    _, outcome = reconcile(desired, outcome.record, server, self._saver(entry, desired),
                                           fetch=self.fetch)
        except ClientregError as exc:
            entry.status = {**entry.status, "ready": False, "synced": False, "reason": exc.reason,
                            "message": str(exc), "updatedAt": datetime.now(UTC).isoformat()}
            if entry.record is not None or entry.requests:
                self.store.write(entry)
            return Result(ns, name, False, exc.reason, str(exc),
                          entry.record.client_id if entry.record else None, exit_code=exc.exit_code)
        for event in outcome.events:
            log.log(logging.WARNING if event.warning else logging.INFO, "%s/%s %s: %s", ns, name, event.reason,
                    event.message)
        if outcome.record is None:
            self.store.delete(ns, name)
        else:
            if request and outcome.record.rotation_request == request:
                entry.requests.pop("rotation", None)
            entry.record = _with_policy(outcome.record, desired)
            status = _status(outcome)
            # A no-op apply writes nothing locally either: the status only moves when something happened.
            if _without_time(status) != _without_time(entry.status) or request:
                entry.status = status
                self.store.write(entry)
        # Waiting for a document to be published is a dependency, not a failure (exit 3, like a Secret).
        waiting = 3 if outcome.reason == Reason.DOCUMENT_NOT_PUBLISHED else 0
        shown = report.of_outcome(outcome)  # what `get` shows afterwards too
        message = shown.message
        if outcome.reason == Reason.TOKEN_REVOKED:
            # A person must adopt or delete the client, whether or not its credentials still work.
            waiting, message = ATTENTION_EXIT, f"{message}. {adopt_hint(self.store.root, ns, name)}"
        return Result(ns, name, shown.ready, shown.headline, message,
                      outcome.record.client_id if outcome.record else None,
                      outcome.record.client_secret_expires_at if outcome.record else None, exit_code=waiting)

    def plan_one(self, client: OAuthClient) -> Result:
        ns, name = client.metadata.namespace or DEFAULT_NAMESPACE, client.metadata.name
        entry = self.store.load(ns, name)
        desired = Desired.from_client(client, rotation_request=entry.requests.get("rotation"))
        try:
            server = self.connection(client)
            server.check_policy(desired.metadata)  # as in apply, before any request; a read may rotate the RAT
            observation = observe(entry.record, server, self._saver(entry), fetch=self.fetch)
        except ClientregError as exc:
            return Result(ns, name, False, exc.reason, str(exc), exit_code=exc.exit_code)
        the_plan: Plan = plan(desired, entry.record, observation, datetime.now(UTC))
        return Result(ns, name, not the_plan.writes, str(the_plan.reason), the_plan.message,
                      entry.record.client_id if entry.record else None,
                      actions=[f"{a.kind}: {a.reason}: {a.message}" for a in the_plan.actions],
                      fired=[{"policy": f.policy, "reason": str(f.reason), "message": f.message, "acted": f.acted}
                             for f in the_plan.fired])

    def _saver(self, entry: Entry, desired: Desired | None = None) -> Callable[[RegistrationRecord | None], None]:
        def save(record: RegistrationRecord | None) -> None:
            entry.record = _with_policy(record, desired)
            if record is None:
                self.store.delete(entry.namespace, entry.name)
            else:
                self.store.write(entry)
        return save

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.documents_http.close()



def _with_policy(record: RegistrationRecord | None, desired: Desired | None) -> RegistrationRecord | None:
    """The record, keeping the declared deletionPolicy: ``clientreg delete NAME`` has no spec to read it from."""
    if record is None or desired is None or record.deletion_policy == desired.deletion_policy:
        return record
    return record.model_copy(update={"deletion_policy": desired.deletion_policy})
