"""One reconcile of one OAuthClient: cluster state in, engine, Secrets + status + Events out.

Synchronous on purpose: the engine is, and its ``save`` must have written the record Secret before it
returns (a new registration access token is never held only in memory). The controller runs this in
a worker thread, one reconcile per object at a time (controller.py).

Every trigger (create, update, resume, the schedule, the rotate annotation) runs :meth:`Reconciler.reconcile`;
events about the Secrets the operator owns run :meth:`Reconciler.heal`, which restores the credentials
Secret from the record without bothering the authorization server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from clientreg import engine, publish, report, ssrf
from clientreg.engine import ActionKind, Desired, Outcome, Plan, Reason
from clientreg.errors import ClientregError, ConfigurationError, DependencyNotReady, NamespaceNotAllowed, RateLimited
from clientreg.record import RegistrationRecord
from clientreg.resolve import DEFAULT_CLUSTER_RESOURCE_NAMESPACE
from clientreg.spec import OAuthClient, parse_document
from clientreg_kube.cluster import Body, Cluster, unavailable
from clientreg_kube.conventions import ROTATE_ANNOTATION
from clientreg_kube.secrets import (
    SecretConflict,
    SecretWriter,
    credentials_changed,
    is_owned_by,
    read_record,
    render_credentials,
)

from . import status as st
from .connections import Connections
from .documents import DocumentIndex, DocumentNotServed
from .metrics import Metrics
from .records import RecordStore
from .result import Result

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Errors after which the client does not work even though it is registered.
_UNUSABLE = (SecretConflict, DocumentNotServed, NamespaceNotAllowed)  # not for use, whatever the Secret holds
_MIN_REQUEUE = 1.0
#: How long a write of the record Secret is retried while the API server is unavailable (restarting,
#: overloaded): until it is written, a registration the AS just answered exists only in this process.
PERSIST_PATIENCE = 60.0


def guarded_fetch(url: str) -> Any:
    """Published documents are read through the SSRF guard: a tenant's clientIdUrl or jwksUri must not
    make the operator reach cluster-internal hosts (https only, no redirects, public addresses only)."""
    return ssrf.fetch_json(url)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(self, cluster: Cluster, connections: Connections, *, drift_check_interval: float,
                 metrics: Metrics | None = None, clock: Clock = _utc_now, backoff_base: float = 5.0,
                 backoff_max: float = 300.0, documents: DocumentIndex | None = None,
                 fetch: engine.Fetch | None = guarded_fetch, document_requeue: float = 15.0,
                 persist_patience: float = PERSIST_PATIENCE,
                 records_namespace: str = DEFAULT_CLUSTER_RESOURCE_NAMESPACE) -> None:
        self.cluster = cluster
        self.connections = connections
        self.writer = SecretWriter(cluster)
        #: Record Secrets (registration access tokens) live in the operator's namespace, not the tenant's.
        self.records = RecordStore(cluster, records_namespace, self.writer)
        self.drift_check_interval = drift_check_interval
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._failures: dict[tuple[str, str], int] = {}
        #: What the endpoints server publishes (CIMD, JWKS at jwks_uri); None: not served by this operator.
        self.documents = documents
        self.fetch = fetch
        #: Requeue while a document is not served yet (DocumentNotPublished), instead of the drift interval.
        self.document_requeue = document_requeue
        self.persist_patience = persist_patience
        #: Where the OAuthClient is read, and who hears of status writes: the controller's cache (controller.py).
        self.read_client = cluster.get_client
        self.status_written: Callable[[str, str, str | None], None] = lambda namespace, name, version: None

    # --- entry points ---------------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> Result:
        started = time.monotonic()
        try:
            result = self._reconcile(namespace, name)
        except Exception:
            self.metrics.reconciles.labels("crash").inc()
            raise
        finally:
            self.metrics.duration.observe(time.monotonic() - started)
        return result

    def heal(self, namespace: str, name: str) -> Result | None:
        """Restore the credentials Secret from the record. Falls back to a full reconcile when the record
        itself is missing or being deleted. None when there was nothing to do."""
        body = self.read_client(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        try:
            client = _parse(body)
        except ConfigurationError:
            return None
        try:
            record_secret = self.records.get(body)
        except SecretConflict:
            return None
        if record_secret is None or record_secret["metadata"].get("deletionTimestamp"):
            return self.reconcile(namespace, name)
        record = read_record(record_secret)
        if record is None:
            return self.reconcile(namespace, name)
        self._serve_documents(namespace, name, record, body)
        try:
            restored, _ = self._publish(body, client, record)
        except SecretConflict:
            return None
        if restored:
            self.cluster.post_event(body, warning=True, reason="SecretRestored",
                                    message=f"Secret {client.secret_name} was changed or deleted; restored it "
                                            f"from the registration of client {record.client_id}")
        return None

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone (or out of this operator's shard): drop its metrics and its failure count."""
        self.metrics.forget(namespace, name)
        self._failures.pop((namespace, name), None)

    # --- the reconcile ---------------------------------------------------------------------------------

    def _reconcile(self, namespace: str, name: str) -> Result:
        body = self.read_client(namespace, name)
        if body is None:
            self.forget(namespace, name)
            self._serve_documents(namespace, name, None)
            return Result()
        deleting = bool(body["metadata"].get("deletionTimestamp"))
        try:
            client = _parse(body)
        except ConfigurationError as exc:
            # Waits for the next edit of the resource: retrying cannot fix a spec. A registered client stays
            # in status: its credentials still work, and status.clientId keeps serverRef fixed at admission.
            known = self._known_record(body)
            self._report(body, None, known, None, exc, secret_name=(body.get("status") or {}).get("secretName"))
            self.metrics.reconciles.labels("invalid").inc()
            return Result(finished=False, reason=exc.reason)

        try:
            record = self.records.load(body, deleting=deleting)
        except ClientregError as exc:
            return self._failed(body, client, None, exc)
        if deleting and record is None:
            self._serve_documents(namespace, name, None)
            self.records.release(body)
            self.metrics.forget(namespace, name)
            return Result(finished=True)

        latest: list[RegistrationRecord | None] = [record]

        def save(new: RegistrationRecord | None) -> None:
            # Called by the engine after every answer from the AS: written before the next request.
            if new is None:
                self._persist(lambda: self.records.release(body))
            else:
                self._persist(lambda: self.records.save(body, new, absent=latest[0] is None))
            latest[0] = new
            self._serve_documents(namespace, name, None if deleting else new, body)

        desired = Desired.from_client(client, deleting=deleting,
                                      rotation_request=(body["metadata"].get("annotations") or {})
                                      .get(ROTATE_ANNOTATION))
        now = self.clock()
        if not deleting:
            # Served before the engine looks at them: an operator that hosts them sees them at once.
            self._serve_documents(namespace, name, record, body)
        plan: Plan | None = None
        outcome: Outcome | None = None
        error: ClientregError | None = None
        try:
            try:
                server, key = self.connections.connect(client)
            except (ConfigurationError, DependencyNotReady):
                if not (deleting and record is not None):
                    raise
                # A namespace being deleted takes its AuthorizationServer first: the record still knows where the
                # client lives and holds its RAT; the policy of the kind that registered it applies.
                server, key = self.connections.from_record(record, client.spec.server_ref.kind), ("", "", "")
            with self.connections.slot(key):
                plan, outcome = engine.reconcile(desired, record, server, save, now, fetch=self.fetch)
        except ClientregError as exc:
            error = exc
        record = latest[0]

        if deleting:
            if error is not None:
                return self._failed(body, client, record, error)
            for event in outcome.events if outcome else []:
                self.cluster.post_event(body, warning=event.warning, reason=event.reason, message=event.message)
            self.metrics.forget(namespace, name)
            self._failures.pop((namespace, name), None)
            self._serve_documents(namespace, name, None)
            return Result(finished=True, reason=outcome.reason if outcome else None)

        if error is None and self.documents is not None:  # another client holds its document's host or path
            error = self.documents.refusal(namespace, name)
        rotated = False
        if record is not None:
            try:
                _, rotated = self._publish(body, client, record)
            except SecretConflict as exc:
                error = error or exc
            except ClientregError as exc:
                error = error or exc
        if error is not None:
            return self._failed(body, client, record, error, outcome=outcome)

        assert outcome is not None and plan is not None
        self._count(plan)
        self._failures.pop((namespace, name), None)
        self._report(body, client, record, outcome, None, secret_name=client.secret_name)
        self.metrics.reconciles.labels("success").inc()
        requeue = self._requeue_after(desired, record, now)
        if outcome.reason == Reason.DOCUMENT_NOT_PUBLISHED:
            requeue = max(_MIN_REQUEUE, min(requeue, self.document_requeue))
        return Result(requeue_after=requeue, rotated=rotated,
                      secret_name=client.secret_name, client_id=record.client_id if record else None,
                      reason=outcome.reason)

    def _known_record(self, body: Body) -> RegistrationRecord | None:
        try:  # read only (no migration, no restore); one unreadable now is reported by the next valid reconcile
            return read_record(self.records.get(body))
        except Exception:
            return None

    def _persist(self, write: Callable[[], object]) -> None:
        """``write`` the record Secret, waiting out an API server that is away for a while (a restart takes
        seconds): giving up orphans the client the AS just registered, or loses the registration access
        token it just rotated. Each write is idempotent (SecretWriter reads before it writes)."""
        deadline = time.monotonic() + self.persist_patience
        delay = 0.5
        while True:
            try:
                write()
                return
            except Exception as exc:
                if not unavailable(exc) or time.monotonic() + delay > deadline:
                    raise
                if delay == 0.5:  # once per write, not once per attempt
                    log.warning("API server unavailable while writing a record Secret (%s); retrying for up to "
                                "%.0fs", type(exc).__name__, self.persist_patience)
                time.sleep(delay)
                delay = min(2 * delay, 5.0)

    def _publish(self, body: Body, client: OAuthClient, record: RegistrationRecord) -> tuple[bool, bool]:
        """(written, rotated): rotated when the credentials workloads read changed (client ID, secret, key)."""
        namespace = body["metadata"]["namespace"]
        desired = render_credentials(record, client.spec.secret_template, name=client.secret_name,
                                     namespace=namespace, client_name=client.metadata.name, owner=body)
        # Never published for this object (no status.secretName): created without a read first. A Secret of that
        # name there after all makes the create answer 409; the writer reads it then, and refuses one not ours.
        published = (body.get("status") or {}).get("secretName")
        existing = self.cluster.get_secret(namespace, client.secret_name) if published else None
        written = self.writer.publish(desired, owner_uid=body["metadata"]["uid"], existing=existing, read_first=False)
        rotated = written and credentials_changed(existing, desired, client.spec.secret_template)
        previous = (body.get("status") or {}).get("secretName")
        if previous and previous != client.secret_name:
            old = self.cluster.get_secret(namespace, previous)
            if old is not None and is_owned_by(old, body["metadata"]["uid"]):
                self.cluster.delete_secret(namespace, previous)
        return written, rotated

    def _serve_documents(self, ns: str, name: str, record: RegistrationRecord | None, body: Body | None = None) -> None:
        if self.documents is not None:  # body: the OAuthClient, whose age orders claimants of a document path
            claimed = {"claimed": record.registered_at} if record is not None else {}
            self.documents.put(ns, name, publish.documents(record), owner=body, **claimed)

    def _failed(self, body: Body, client: OAuthClient, record: RegistrationRecord | None, error: ClientregError,
                outcome: Outcome | None = None) -> Result:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(self.backoff_max, self.backoff_base * 2 ** (failures - 1))
        if isinstance(error, RateLimited) and error.retry_after:
            delay = max(delay, error.retry_after)
        self.metrics.errors.labels(error.reason).inc()
        self.metrics.reconciles.labels("error").inc()
        log.warning("reconcile of OAuthClient %s/%s failed (%s): %s; retrying in %.0fs", key[0], key[1],
                    error.reason, error, delay)
        self._report(body, client, record, outcome, error, secret_name=client.secret_name)
        return Result(finished=False, requeue_after=delay, reason=error.reason)

    def _requeue_after(self, desired: Desired, record: RegistrationRecord | None, now: datetime) -> float:
        after = self.drift_check_interval
        wakeup = engine.next_wakeup(desired, record)
        if wakeup is not None:
            after = min(after, (wakeup - now).total_seconds())
        return max(_MIN_REQUEUE, after)

    def _count(self, plan: Plan) -> None:
        for action in plan.actions:
            if action.kind is ActionKind.REGISTER:
                self.metrics.registrations.labels(action.reason).inc()
            elif action.kind is ActionKind.ROTATE:
                self.metrics.registrations.labels(action.reason).inc()
                self.metrics.rotations.labels(action.reason).inc()

    # --- status and events -------------------------------------------------------------------------------

    def _report(self, body: Body, client: OAuthClient | None, record: RegistrationRecord | None,
                outcome: Outcome | None, error: ClientregError | None, *, secret_name: str | None) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        now = self.clock()
        old = body.get("status") or {}
        previous = old.get("conditions") or []
        generation = meta.get("generation")
        expires = record.expires_at() if record else None
        usable = record is not None and (expires is None or expires > now) and not isinstance(error, _UNUSABLE)
        # The AS reads the client (CIMD) or its keys (jwks_uri) from the web: not usable until served.
        unpublished = error is None and outcome is not None and outcome.reason == Reason.DOCUMENT_NOT_PUBLISHED
        secret = secret_name or "(none)"

        if error is not None:
            reason = "Waiting" if isinstance(error, DependencyNotReady) else error.reason
            message = error.summary()  # tenants read it: never a raw body of whatever the AS is
            if usable and record is not None:
                message += f" (the credentials of client {record.client_id} in Secret {secret} still work)"
            synced: tuple[st.ConditionStatus, str, str] = ("False", reason, error.summary())
        elif outcome is not None and not (shown := report.of_outcome(outcome)).synced:  # the shared mapping
            reason, message = shown.reason, shown.message
            if reason == Reason.TOKEN_REVOKED:
                message, usable = f"{message}. {st.ADOPT_HINT}", usable and outcome.ready
            synced = ("False", reason, message)
        else:
            reason = Reason.IN_SYNC
            message = (f"client {record.client_id} is registered and matches its spec; credentials in Secret "
                       f"{secret}") if record else "nothing registered"
            synced = ("True", Reason.IN_SYNC, "the authorization server holds the declared metadata")
        if record is not None and not usable and expires is not None and expires <= now and error is None:
            reason, message = "SecretExpired", f"the client secret expired at {st.rfc3339(expires)}"
        ready_status: st.ConditionStatus = "True" if usable and not unpublished else "False"
        condition = partial(st.condition, generation=generation, previous=previous, now=now)
        conditions = [condition(st.READY, ready_status, str(reason), message),
                      condition(st.SYNCED, synced[0], str(synced[1]), synced[2]),
                      *st.progress(str(reason), message, settled=ready_status == synced[0] == "True",
                                   generation=generation, previous=previous, now=now)]
        next_rotation = None
        if record is not None and client is not None:
            desired = Desired.from_client(client)
            next_rotation = engine.next_rotation(desired, record)  # not a retiring client's or key's removal
        facts = st.record_facts(record, next_rotation)
        if client is not None:
            ref = client.spec.server_ref
            facts["server"] = f"{ref.kind}/{ref.name}"
        if record is not None and secret_name and not isinstance(error, SecretConflict):  # a Secret was written
            facts["secretName"] = secret_name
        new = st.with_conditions(facts, conditions, generation)

        # Events: what the engine did, then any change of the Ready condition not already told. A routine first
        # registration posts none (cert-manager's way: its Ready condition and status.registeredAt tell it), so
        # a new client costs four writes: finalizer, record, credentials Secret, status (docs/performance.md).
        told: set[str] = set()
        for event in outcome.events if outcome else []:
            told.update((str(event.reason), str(event.cause)))  # the outcome, and the cause its message tells
            if event.cause != Reason.NOT_REGISTERED or old.get("clientId"):
                self.cluster.post_event(body, warning=event.warning, reason=str(event.reason),
                                        message=event.message)
        old_ready = st.ready_reason(old)
        # After an action the engine's own event already tells the story; a condition change needs its own
        # event when nothing else was said (recovery, waiting) or when something is wrong.
        quiet = bool(told) and ready_status == "True" and error is None
        if old_ready != (ready_status, str(reason)) and str(reason) not in told and not quiet:
            self.cluster.post_event(body, warning=error is not None or ready_status != "True", reason=str(reason),
                                    message=message)

        patch = st.status_patch(old, new)
        if patch is not None:
            self.status_written(namespace, name, self.cluster.patch_client_status(namespace, name, patch))
        self.metrics.client_state(namespace, name, ready=usable, client_id=record.client_id if record else None,
                                  expires_at=expires.timestamp() if expires else None)


def _parse(body: Body) -> OAuthClient:
    document: dict[str, Any] = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    parsed = parse_document(document)
    assert isinstance(parsed, OAuthClient)
    return parsed
