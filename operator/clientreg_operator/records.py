"""Where the operator keeps each OAuthClient's registration record: a Secret in its own namespace.

The record holds the RFC 7592 registration access token. Anyone who holds it can rewrite the client at
the AS (a new redirect URI) or rotate the token away from clientreg, so it must not sit where tenants
read Secrets: it lives in the records namespace (the operator's own, ``--records-namespace``) as
``clientreg-record-<OAuthClient uid>``, labelled with the OAuthClient's namespace and name.

Ownership: an ownerReference cannot cross namespaces (the garbage collector would take a record whose
owner it cannot find in the record's namespace for an orphan and delete it), so the record names its
OAuthClient in an annotation and the UID in its name. It goes when the OAuthClient's deletion has dealt
with the client at the AS (the engine saves "no record"); :meth:`RecordStore.sweep` removes only records
that deletion already released. A namespace deletion no longer takes the record with it.

Upgrades: a record found at the old place (``<name>-clientreg-record`` in the tenant's namespace) is
copied here first and only then released and deleted there (:meth:`RecordStore.load`).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from clientreg.record import RegistrationRecord
from clientreg_kube.cluster import Body, Cluster, Conflict
from clientreg_kube.conventions import (
    CLIENT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MANAGED_SELECTOR,
    RECORD_FINALIZER,
    RECORD_PREFIX,
    ROLE_LABEL,
    ROLE_RECORD,
    ROTATE_ANNOTATION,
    legacy_record_name,
    record_name,
)
from clientreg_kube.secrets import SecretConflict, SecretWriter, is_owned_by, read_record, render_record

log = logging.getLogger(__name__)

#: Selects every record Secret (the documents server and the sweep list them by it).
RECORD_SELECTOR = f"{MANAGED_SELECTOR},{ROLE_LABEL}={ROLE_RECORD}"


def client_ref(body: Body) -> str:
    """``<namespace>/<name>`` of an OAuthClient: the annotation value its record carries."""
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"


def belongs_to(secret: Body, body: Body) -> bool:
    """True when ``secret`` is the record of the OAuthClient ``body`` (its UID is in the Secret's name)."""
    meta = secret.get("metadata") or {}
    return ((meta.get("annotations") or {}).get(CLIENT_ANNOTATION) == client_ref(body)
            and (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY)


@dataclass(frozen=True)
class SweepResult:
    #: Records whose OAuthClient exists (with the UID in the record's name).
    live: int = 0
    #: Records deleted: their OAuthClient is gone and its deletion had already released them.
    removed: int = 0
    #: Records kept although their OAuthClient is gone: they may hold the only token of a live client.
    orphaned: int = 0
    #: Records not judged (unreadable annotation, or the OAuthClient could not be read).
    skipped: int = 0


class RecordStore:
    """Reads, writes, migrates and releases record Secrets in ``namespace`` (the records namespace)."""

    def __init__(self, cluster: Cluster, namespace: str, writer: SecretWriter | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.writer = writer or SecretWriter(cluster)
        #: UIDs whose old-place record was looked for in this process: one GET each per process, not per reconcile.
        self._legacy_checked: set[str] = set()
        self._lock = threading.Lock()
        #: (namespace, name) → True when a Secret is known not to be there (watches.SecretIndex): an old-place
        #: record carries the operator's label, so its Secret watch has it if it exists.
        self.legacy_absent: Callable[[str, str], bool] | None = None

    def name(self, body: Body) -> str:
        return record_name(body["metadata"]["uid"])

    def render(self, record: RegistrationRecord, body: Body) -> Body:
        meta = body["metadata"]
        return render_record(record, name=self.name(body), namespace=self.namespace, client_name=meta["name"],
                             client_namespace=meta["namespace"], owner=body)

    def get(self, body: Body) -> Body | None:
        """The record Secret of ``body`` in the records namespace, if it is there and really its own."""
        secret = self.cluster.get_secret(self.namespace, self.name(body))
        if secret is not None and not belongs_to(secret, body):
            # Only the operator writes here; a Secret of this name naming another OAuthClient was put by hand.
            raise SecretConflict(f"record Secret {self.namespace}/{self.name(body)} names another OAuthClient: "
                                 "remove it (after checking which client at the AS it describes)")
        return secret

    def save(self, body: Body, record: RegistrationRecord, *, absent: bool = False) -> bool:
        """``absent``: no record was there when this reconcile began, so it is created without a read first (a
        record there after all makes the create fail with 409, and the writer reads and updates it then)."""
        return self.writer.publish(self.render(record, body), owner_uid=None, read_first=not absent)

    def release(self, body: Body) -> None:
        """The OAuthClient's deletion is done with the client at the AS: the record goes."""
        self.writer.release(self.namespace, self.name(body))

    # --- load, with the upgrade migration ---------------------------------------------------------------

    def load(self, body: Body, *, deleting: bool) -> RegistrationRecord | None:
        """The record of ``body``: moved here first if an older operator left it in the tenant's namespace;
        written anew if someone deleted it while the client lives (its finalizer kept it readable)."""
        secret = self.get(body)
        uid = body["metadata"]["uid"]
        with self._lock:
            checked = uid in self._legacy_checked
        if not checked:
            secret = self._migrate(body, secret)
            with self._lock:
                self._legacy_checked.add(uid)
        record = read_record(secret)
        if secret is not None and secret["metadata"].get("deletionTimestamp") and record and not deleting:
            self.writer.release(self.namespace, self.name(body))
            self._recreate(body, record)
        return record

    def _migrate(self, body: Body, current: Body | None) -> Body | None:
        """Copy an old-place record here (unless a copy is here already: a crash between copy and delete
        leaves both, and the one here is the one written since), then release and delete the old one."""
        namespace, name, uid = body["metadata"]["namespace"], body["metadata"]["name"], body["metadata"]["uid"]
        old_name = legacy_record_name(name)
        if self.legacy_absent is not None and self.legacy_absent(namespace, old_name):
            return current  # the operator's Secret watch has listed that namespace: none there, no GET
        old = self.cluster.get_secret(namespace, old_name)
        if old is None or not _legacy_of(old, uid):
            return current  # none, or another OAuthClient's (an earlier one of the same name): not ours to move
        moved = None
        if current is None:
            record = read_record(old)  # unreadable: StateError, and the old Secret stays where it is
            if record is not None:
                desired = self.render(record, body)
                self.writer.publish(desired, owner_uid=None)
                current, moved = desired, record.client_id
        self._release_legacy(namespace, old_name)
        log.info("OAuthClient %s/%s: record Secret moved from its namespace to %s/%s", namespace, name,
                 self.namespace, self.name(body))
        if moved is not None:
            self.cluster.post_event(
                body, warning=False, reason="RecordMoved",
                message=f"moved the record of client {moved} (it holds the registration access token) from "
                        f"Secret {old_name} of this namespace to the operator's namespace; whoever could read "
                        f"Secrets here could read that token: set the {ROTATE_ANNOTATION} annotation to replace "
                        "the client if that matters")
        return current

    def _release_legacy(self, namespace: str, name: str) -> None:
        """Drop our finalizer (with an update: tenant namespaces need no patch on Secrets) and delete."""
        for _ in range(5):
            old = self.cluster.get_secret(namespace, name)
            if old is None:
                return
            finalizers = old["metadata"].get("finalizers") or []
            if RECORD_FINALIZER not in finalizers:
                break
            body = copy.deepcopy(old)
            body["metadata"]["finalizers"] = [f for f in finalizers if f != RECORD_FINALIZER]
            try:
                self.cluster.replace_secret(namespace, name, body)
                break
            except Conflict:
                continue  # changed meanwhile: read it again
        self.cluster.delete_secret(namespace, name)

    def _recreate(self, body: Body, record: RegistrationRecord) -> None:
        desired = self.render(record, body)
        for _ in range(50):
            try:
                self.cluster.create_secret(self.namespace, desired)
                break
            except Conflict:
                time.sleep(0.1)  # the old object is still being removed
        self.cluster.post_event(body, warning=True, reason="RecordRestored",
                                message=f"the record Secret {self.name(body)} was deleted; wrote it anew")

    # --- the sweep -------------------------------------------------------------------------------------------

    def sweep(self) -> SweepResult:
        """Look at every record whose OAuthClient is gone (no object of that namespace/name, or one with
        another UID).

        Only a record without :data:`RECORD_FINALIZER` is deleted: the operator removes it once the
        OAuthClient's deletion has deleted (or, by policy, orphaned) the client at the AS, so such a record
        was released and only its DELETE was lost. A record still holding the finalizer may carry the only
        registration access token of a client that still exists (the OAuthClient's finalizer was removed by
        hand, or its CRD deleted): it is kept and reported, never deleted. Any doubt (an unreadable
        annotation, an OAuthClient that cannot be read) keeps the record.
        """
        live = removed = orphaned = skipped = 0
        for secret in self.cluster.list_secrets(self.namespace, RECORD_SELECTOR):
            meta = secret.get("metadata") or {}
            name = str(meta.get("name") or "")
            uid = name[len(RECORD_PREFIX):] if name.startswith(RECORD_PREFIX) else ""
            client_namespace, _, client_name = str((meta.get("annotations") or {}).get(CLIENT_ANNOTATION)
                                                   or "").partition("/")
            if not (uid and client_namespace and client_name):
                skipped += 1
                continue
            try:
                client = self.cluster.get_client(client_namespace, client_name)
            except Exception as exc:  # no access to that namespace, API server away: judge nothing
                log.warning("record sweep: cannot read OAuthClient %s/%s (%s); keeping record %s",
                            client_namespace, client_name, type(exc).__name__, name)
                skipped += 1
                continue
            if client is not None and client["metadata"].get("uid") == uid:
                live += 1
            elif RECORD_FINALIZER not in (meta.get("finalizers") or []):
                self.cluster.delete_secret(self.namespace, name)
                removed += 1
            else:
                orphaned += 1
                log.warning("record Secret %s/%s outlived OAuthClient %s/%s (uid %s) without being released: it "
                            "may hold the only registration access token of a client still registered at the "
                            "AS. Delete that client at the AS, then remove the finalizer %s and the Secret",
                            self.namespace, name, client_namespace, client_name, uid, RECORD_FINALIZER)
        return SweepResult(live=live, removed=removed, orphaned=orphaned, skipped=skipped)


def _legacy_of(secret: Body, uid: str) -> bool:
    """An old-place record written by the operator for the OAuthClient with ``uid``."""
    labels = secret.get("metadata", {}).get("labels") or {}
    return (is_owned_by(secret, uid) and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
            and labels.get(ROLE_LABEL) == ROLE_RECORD)
