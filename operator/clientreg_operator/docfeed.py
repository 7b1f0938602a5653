"""Fill the :class:`~.documents.DocumentIndex` of EVERY replica from the record Secrets.

The Service in front of the operator balances over all replicas, leader and standbys alike, so each must
serve the same documents; only the leader reconciles. The record Secrets, in the records namespace (the
operator's own), are what every replica can read: each ``clientreg.dev/role=record`` Secret holds one
OAuthClient's record (``record.json``), and :func:`clientreg.publish.documents` of it is that client's
public documents. A periodic list (every few seconds) rather than a watch: a watch would need its own
reconnect, relist and bookmark logic to be as robust, and a list of one label in one namespace is cheap
(parsed records are cached by resourceVersion, so an unchanged Secret is not parsed again).

It starts before leader election and runs until the process stops; a failed list keeps the last view (a
replica that cannot reach the API server goes on serving what it knew) and is retried at the next tick.

Only the records namespace is read, and it is the operator's: tenants cannot write a record there, so the
annotations that say which OAuthClient a record belongs to (and how old it is) are trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from clientreg import publish
from clientreg.errors import ClientregError
from clientreg_kube.cluster import Body, Cluster
from clientreg_kube.conventions import (
    CLIENT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OAUTHCLIENT_CREATED_ANNOTATION,
    OAUTHCLIENT_UID_ANNOTATION,
    RECORD_PREFIX,
    ROLE_LABEL,
    ROLE_RECORD,
)
from clientreg_kube.secrets import read_record

from .documents import Claim, DocumentIndex, claim, parse_timestamp

log = logging.getLogger(__name__)

#: Every record Secret, and nothing else (the same labels the operator's Secret watch selects on).
RECORD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{ROLE_LABEL}={ROLE_RECORD}"
DEFAULT_INTERVAL = 5.0


def _owner(secret: Body) -> tuple[str, str, str] | None:
    """(namespace, name, uid) of the OAuthClient a record Secret belongs to; None when it does not say."""
    meta = secret.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    namespace, _, name = str(annotations.get(CLIENT_ANNOTATION) or "").partition("/")
    controller = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if not (namespace and name) and controller is not None:
        # A record written before the annotation existed, next to its OAuthClient.
        namespace, name = str(meta.get("namespace") or ""), str(controller.get("name") or "")
    if not (namespace and name):
        return None
    secret_name = str(meta.get("name") or "")
    uid = str(annotations.get(OAUTHCLIENT_UID_ANNOTATION)
              or (secret_name[len(RECORD_PREFIX):] if secret_name.startswith(RECORD_PREFIX) else "")
              or (controller or {}).get("uid") or meta.get("uid") or "")
    return namespace, name, uid


def claim_of(secret: Body) -> Claim | None:
    """The documents one record Secret publishes, ordered by its OAuthClient's age; None: nothing to serve."""
    meta = secret.get("metadata") or {}
    if (meta.get("labels") or {}).get(ROLE_LABEL) != ROLE_RECORD:
        return None  # the list selects on it; checked again so that nothing else is ever read as a record
    owner = _owner(secret)
    if owner is None or meta.get("deletionTimestamp"):
        return None  # a record on its way out: its client is being deleted
    namespace, name, uid = owner
    try:
        record = read_record(secret)
    except ClientregError as exc:
        log.warning("record Secret %s: not read (%s); its documents are not served", meta.get("name"), exc.reason)
        return None
    documents = publish.documents(record)
    if record is None or not documents:
        return None
    created = parse_timestamp((meta.get("annotations") or {}).get(OAUTHCLIENT_CREATED_ANNOTATION)
                              or meta.get("creationTimestamp"))
    return claim(namespace, name, documents, created=created, uid=uid, claimed=record.registered_at)


class RecordFeed:
    """List the record Secrets every ``interval`` seconds and hand the index the documents they hold."""

    def __init__(self, cluster: Cluster, index: DocumentIndex, *, namespace: str,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.cluster = cluster
        self.index = index
        self.namespace = namespace
        self.interval = interval
        #: Secret uid → (resourceVersion, claim): an unchanged record is not parsed and rendered again.
        self._cache: dict[str, tuple[str, Claim | None]] = {}
        self._failing = False
        #: Completed lists (tests wait on it instead of on time), and set after the first one.
        self.syncs = 0
        self.listed = asyncio.Event()

    def sync(self) -> int:
        """One list; returns how many clients have documents. Raises what the API call raised."""
        started = time.monotonic()
        secrets = self.cluster.list_secrets(self.namespace, RECORD_SELECTOR)
        cache: dict[str, tuple[str, Claim | None]] = {}
        claims: list[Claim] = []
        for secret in secrets:
            meta = secret.get("metadata") or {}
            uid, version = str(meta.get("uid") or meta.get("name")), str(meta.get("resourceVersion") or "")
            cached = self._cache.get(uid)
            found = cached[1] if cached is not None and cached[0] == version and version else claim_of(secret)
            cache[uid] = (version, found)
            if found is not None:
                claims.append(found)
        self._cache = cache
        self.index.replace_all(claims, listed_since=started)
        self.syncs += 1
        return len(claims)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await asyncio.to_thread(self.sync)
                self.listed.set()
                if self._failing:
                    log.info("record Secrets in %s listed again (%d clients with documents)", self.namespace, count)
                self._failing = False
            except Exception as exc:  # keep serving the last view; say so once per outage
                if not self._failing:
                    log.warning("cannot list record Secrets in %s (%s); serving the documents last listed, retrying "
                                "every %.0fs", self.namespace, type(exc).__name__, self.interval)
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
