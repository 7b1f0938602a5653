"""What ``kubectl get oauthclients`` shows: the status models and the pure rules that fill them.

cert-manager's shape: a ``Ready`` condition that says whether workloads can use the Secret now, a
``Synced`` condition that says whether the AS holds what the spec declares, ``observedGeneration``, and
the facts a person asks first (client ID, expiry, rotations). A condition's ``lastTransitionTime`` moves
only when its status flips, so a stable resource produces byte-identical status and no write.

kstatus (sigs.k8s.io/cli-utils, behind Flux's health checks) does not read ``Synced``, and reads
``Ready=False`` as InProgress whatever the reason: a client whose spec can never work would keep a
health check waiting until its timeout. So every status also carries kstatus's abnormal-true
conditions (see :func:`progress`): ``Stalled=True`` on a terminal reason (kstatus: Failed),
``Reconciling=True`` while work is under way or retried (InProgress), neither once ``Ready`` and
``Synced`` are True (Current). ``observedGeneration`` is written on every report, failures included: a
generation ahead of it is InProgress, however the conditions read.

A reason is terminal when retrying cannot fix it: only a change of this resource, or of another one
(or of the authorization server's configuration) by a person does. The operator keeps retrying either
way, and the conditions clear on the first reconcile that succeeds.

======================================  ========  ====================================================
Reason                                  kstatus   Why
======================================  ========  ====================================================
InvalidSpec                             Failed    the spec (or the referenced server's) must be edited
PolicyViolation                         Failed    an operator policy forbids the spec (SSRF guard, ...)
NotPermitted                            Failed    allowedRedirectHosts/Schemes refuse a redirect URI, or
                                                  the AS answered 403 (RFC 7592 §2)
NamespaceNotAllowed                     Failed    the ClusterAuthorizationServer's allowedNamespaces, or
                                                  the namespace's labels, must change
SecretConflict                          Failed    a Secret the operator does not own has the name
RegisteredAtAnotherServer               Failed    the client was registered at another server than the
                                                  spec names: restore it, or delete and re-create
DocumentHostTaken / DocumentPathTaken   Failed    another client claimed the document's host or path
                                                  first; it must go, or this spec must change
DocumentRefused                         Failed    the document this spec renders cannot be served
RegistrationRejected                    Failed    the AS refused the metadata (RFC 7591 §3.2.2)
ServerRefusedValue                      Failed    the AS keeps other values than the declared ones
CredentialsRejected                     Failed    the AS refuses the token (RFC 7592 §2): a person
                                                  must fix the initial access token or adopt the client
RegistrationAccessTokenRevoked          Failed    401 to the read, the client still exists (or is not
                                                  proven gone): a person adopts it (restores the token
                                                  into the record Secret) or deletes it
Unsupported                             Failed    the AS lacks the RFC 7592 operation the change needs
StateError                              Failed    the record is unreadable: restore it from a backup
RetiringClientDeleteRefused             Failed    an old client may still be live: check it at the AS
Waiting                                 Progress  a Secret or server it needs is not there yet
ServerUnreachable / RateLimited         Progress  transport trouble, retried with backoff
ServerError / DiscoveryFailed           Progress  the AS answered badly, maybe for a while: retried
DocumentNotPublished                    Progress  a CIMD/JWKS document is not served as rendered yet
ClientGoneAtServer, SecretExpired       Progress  the operator registers or rotates anew
anything else (new reasons included)    Progress  a health check times out rather than fail wrongly
InSync (Ready and Synced True)          Current   neither condition is set
======================================  ========  ====================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from clientreg.record import RegistrationRecord
from clientreg_kube.conventions import ROTATE_ANNOTATION

ConditionStatus = Literal["True", "False", "Unknown"]
READY = "Ready"
SYNCED = "Synced"
#: kstatus's abnormal-true conditions (sigs.k8s.io/cli-utils pkg/kstatus): absent means "no".
STALLED = "Stalled"
RECONCILING = "Reconciling"

#: Reasons that retrying cannot fix (the table in the module docstring).
TERMINAL_REASONS = frozenset({
    "InvalidSpec", "PolicyViolation", "NotPermitted", "NamespaceNotAllowed", "SecretConflict",
    "RegisteredAtAnotherServer",
    "DocumentHostTaken", "DocumentPathTaken", "DocumentRefused", "RegistrationRejected", "ServerRefusedValue",
    "CredentialsRejected", "Unsupported", "StateError", "RetiringClientDeleteRefused",
    "RegistrationAccessTokenRevoked",
})

#: How an operator user adopts or deletes a client whose registration access token someone else holds.
ADOPT_HINT = ("To adopt it, put a valid registration access token (the last one the AS issued for it) into "
              "registration_access_token of record.json in the record Secret clientreg-record-<OAuthClient uid> "
              "in the operator's records namespace; to drop it, delete the OAuthClient (deletionPolicy Orphan "
              "keeps the client at the AS) and remove the client at the AS by hand.")


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(_Status):
    """The Kubernetes condition convention (metav1.Condition)."""

    type: str = Field(description="Ready: the Secret holds usable credentials. Synced: the client at the "
                      "authorization server matches the spec. Stalled (kstatus): a failure retrying cannot fix. "
                      "Reconciling (kstatus): work under way or retried.")
    status: ConditionStatus
    reason: str = Field(description="CamelCase reason, e.g. InSync, Waiting, ServerUnreachable.")
    message: str = ""
    last_transition_time: str | None = Field(None, description="When status last changed (RFC 3339).")
    observed_generation: int | None = None


class RetiringStatus(_Status):
    client_id: str
    delete_after: str = Field(description="When the old client is deleted at the AS (RFC 3339).")


class OAuthClientStatus(_Status):
    """Observed state of an OAuthClient. Never holds a credential."""

    observed_generation: int | None = Field(None, description="The metadata.generation last reconciled.")
    conditions: list[Condition] = Field(default_factory=list)
    client_id: str | None = Field(None, description="The client_id the AS issued.")
    server: str | None = Field(None, description="Kind/name of the authorization server.")
    secret_name: str | None = Field(None, description="The Secret holding the credentials.")
    registered_at: str | None = Field(None, description="When the current client was registered.")
    secret_expires_at: str | None = Field(
        None, description="When the client secret expires; absent when it never does.")
    last_rotation: str | None = Field(None, description="When the credentials were last replaced.")
    next_rotation: str | None = Field(None, description="When the credentials will next be replaced.")
    last_rotation_request: str | None = Field(
        None, description=f"The last value of the {ROTATE_ANNOTATION} annotation that was honoured.")
    retiring: list[RetiringStatus] = Field(
        default_factory=list, description="Old clients kept until their grace period is over.")


class AuthorizationServerStatus(_Status):
    """Observed state of an AuthorizationServer or ClusterAuthorizationServer."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    issuer: str | None = None
    registration_endpoint: str | None = None
    token_endpoint: str | None = None


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(type_: str, status: ConditionStatus, reason: str, message: str, *, generation: int | None,
              previous: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """A condition dict whose lastTransitionTime is carried over unless its status flipped."""
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return Condition(type=type_, status=status, reason=reason, message=message, observed_generation=generation,
                     last_transition_time=since or rfc3339(now)).model_dump(by_alias=True, exclude_none=True)


def progress(reason: str, message: str, *, settled: bool, generation: int | None, previous: list[dict[str, Any]],
             now: datetime) -> list[dict[str, Any]]:
    """kstatus's conditions for a resource whose Ready condition carries ``reason``: none when ``settled``,
    else ``Stalled=True`` for a terminal reason and ``Reconciling=True`` for any other. Never both: kstatus
    takes whichever comes first."""
    if settled:
        return []
    type_ = STALLED if reason in TERMINAL_REASONS else RECONCILING
    return [condition(type_, "True", reason, message, generation=generation, previous=previous, now=now)]


def record_facts(record: RegistrationRecord | None, next_rotation: datetime | None) -> dict[str, Any]:
    """The status fields that describe the current registration (none of them secret)."""
    if record is None:
        return {}
    issued = (datetime.fromtimestamp(record.client_id_issued_at, UTC) if record.client_id_issued_at
              else record.registered_at)
    facts = OAuthClientStatus(
        client_id=record.client_id, registered_at=rfc3339(issued), secret_expires_at=rfc3339(record.expires_at()),
        last_rotation=rfc3339(record.last_rotation), next_rotation=rfc3339(next_rotation),
        last_rotation_request=record.rotation_request,
        retiring=[RetiringStatus(client_id=r.client_id, delete_after=rfc3339(r.delete_after) or "")
                  for r in record.retiring])
    return facts.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


def with_conditions(facts: dict[str, Any], conditions: list[dict[str, Any]], generation: int | None) -> dict[str, Any]:
    out = dict(facts)
    out["conditions"] = conditions
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning ``old`` into ``new`` (fields dropped become null), or None if equal."""
    old = old or {}
    if old == new:
        return None
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch


def ready_reason(status: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(status, reason) of the Ready condition in a status dict: what a transition is measured by."""
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == READY:
            return c.get("status"), c.get("reason")
    return None, None


def openapi_status_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The CRD schema of a status model (the core's generator, with condition lists keyed by type)."""
    from clientreg.openapi import openapi_schema

    schema = openapi_schema(model)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema
