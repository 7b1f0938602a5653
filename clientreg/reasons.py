"""Every reason clientreg emits, in one place: one name, one meaning each.

A reason is the CamelCase word a condition (``Ready``/``Synced``), an Event, a Pulumi ``status`` output or
a CLI ``REASON`` column carries. Users match on these strings (alerts, Flux health checks, scripts), so a
name keeps its meaning once published: a new meaning gets a new name.

Two kinds: a **cause** says why a resource is in its state or why an action is planned (conditions, plans,
metrics labels); an **outcome** says what a run did (Events: ``Registered``, ``Rotated``, ``Updated``...), its
message naming the cause. A few are both (``Deleted``, ``Orphaned``; errors name the cause of a Warning).

``python -m clientreg.reasons`` prints the table (Markdown) that docs/ shows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Reasons the core's policies and apply emit (see :mod:`clientreg.policies`)."""

    NOT_REGISTERED = "NotRegistered"
    CLIENT_GONE = "ClientGoneAtServer"
    CREDENTIALS_REJECTED = "CredentialsRejected"
    #: 401 to the RFC 7592 read, and the client is not proven gone (clientreg.liveness): nothing is replaced.
    TOKEN_REVOKED = "RegistrationAccessTokenRevoked"
    #: The spec changed and the client is updated in place (RFC 7592 PUT, or a new CIMD document).
    SPEC_CHANGED = "SpecChanged"
    #: The spec changed and the AS offers no RFC 7592 update: a replacement client is registered.
    SPEC_CHANGED_REPLACED = "SpecChangedReplacement"
    #: Someone changed the client at the AS: the declared values are restored.
    DRIFT = "DriftAtServer"
    #: A document the AS reads from the web is served, but not as rendered.
    DOCUMENT_DIFFERS = "PublishedDocumentDiffers"
    REFUSED = "ServerRefusedValue"
    NEARING_EXPIRY = "SecretNearingExpiry"
    PERIOD_ELAPSED = "RotationPeriodElapsed"
    ROTATION_REQUESTED = "RotationRequested"
    GRACE_OVER = "GracePeriodOver"
    DELETED = "Deleted"
    ORPHANED = "Orphaned"
    IN_SYNC = "InSync"
    #: A document the AS reads from the web (CIMD, JWKS at jwks_uri) is not served yet.
    DOCUMENT_NOT_PUBLISHED = "DocumentNotPublished"
    #: Event: a private_key_jwt key was replaced; the old one stays in the JWKS for the grace period.
    KEY_ROTATED = "KeyRotated"
    #: A retiring client's DELETE was refused with 401 (see :mod:`clientreg.retiring`).
    RETIRING_DELETE_REFUSED = "RetiringClientDeleteRefused"
    # Outcomes: the reasons of the Events telling what a run did (the cause is in the message and the conditions).
    REGISTERED = "Registered"
    ROTATED = "Rotated"
    REPLACED = "Replaced"
    UPDATED = "Updated"
    DRIFT_CORRECTED = "DriftCorrected"
    OLD_CLIENT_DELETED = "OldClientDeleted"
    OLD_CLIENT_NOT_DELETED = "OldClientNotDeleted"
    OLD_KEY_REMOVED = "OldKeyRemoved"


class Kind(enum.StrEnum):
    CAUSE = "cause"
    OUTCOME = "outcome"
    BOTH = "cause, outcome"


@dataclass(frozen=True)
class ReasonInfo:
    name: str
    kind: Kind
    #: Who emits it: core (every front end), operator, pulumi.
    source: str
    description: str


def _r(name: str, kind: Kind, source: str, description: str) -> ReasonInfo:
    return ReasonInfo(str(name), kind, source, description)


C, E, B = Kind.CAUSE, Kind.OUTCOME, Kind.BOTH

#: The registry, in the order the docs show it: the policies' reasons first (precedence order), then
#: apply's outcomes, then errors, then what only one front end says.
REASONS: tuple[ReasonInfo, ...] = (
    # --- policies (clientreg/policies.py) and the events of the actions they cause
    _r(Reason.DELETED, B, "core", "The resource is being deleted and deletionPolicy is Delete: the client (and any "
       "retiring ones) are deleted at the AS."),
    _r(Reason.ORPHANED, B, "core", "The resource is being deleted and deletionPolicy is Orphan: the client is kept "
       "at the AS and forgotten."),
    _r(Reason.NOT_REGISTERED, B, "core", "Nothing is registered yet: a new client is registered."),
    _r(Reason.CLIENT_GONE, B, "core", "The AS says the client no longer exists (RFC 7592 §2.1: 404/410, or 401 "
       "and the token endpoint answers invalid_client, RFC 6749 §5.2): a new client is registered."),
    _r(Reason.TOKEN_REVOKED, B, "core", "The AS rejects the registration access token (RFC 7592 §2.1, 401) but "
       "the client still exists (or cannot be proven gone: the token endpoint did not answer invalid_client): "
       "someone else may hold it; nothing is replaced. A Warning names the client ID; Ready stays True while "
       "its credentials work, Synced is False. Adopt it (restore a valid registration access token into the "
       "record) or delete it."),
    _r(Reason.CREDENTIALS_REJECTED, B, "core", "The AS rejects the registration access token (RFC 7592 §2, 401) to "
       "an update or delete: nothing is replaced; a person must restore the token or adopt the client."),
    _r(Reason.ROTATION_REQUESTED, B, "core", "A rotation was requested (annotation, Pulumi trigger, CLI): a "
       "replacement client (or key) is registered."),
    _r(Reason.NEARING_EXPIRY, B, "core", "The client secret nears its expiry (rotation.rotateBefore, else two thirds "
       "of its lifetime): a replacement client is registered."),
    _r(Reason.PERIOD_ELAPSED, B, "core", "rotation.period has elapsed since the last rotation: a replacement client "
       "(or key) is registered."),
    _r(Reason.SPEC_CHANGED_REPLACED, B, "core", "The spec changed and the AS offers no RFC 7592 update: a "
       "replacement client is registered with the new metadata; the old one retires after the grace period."),
    _r(Reason.SPEC_CHANGED, B, "core", "The spec changed: the client is updated in place (RFC 7592 PUT, or a new "
       "CIMD document)."),
    _r(Reason.DRIFT, B, "core", "Someone changed the client at the AS: the declared values are restored "
       "(RFC 7592 PUT). Pulumi's refresh reports it as status."),
    _r(Reason.DOCUMENT_NOT_PUBLISHED, C, "core", "A document the AS reads from the web (CIMD, JWKS at jwks_uri) "
       "is not served yet: not Ready until it is."),
    _r(Reason.DOCUMENT_DIFFERS, C, "core", "A document the AS reads from the web is served but differs from the "
       "rendered one: publish the rendered one."),
    _r(Reason.REFUSED, B, "core", "The AS did not keep some declared values (it rewrote or dropped them): the "
       "client works (Ready) but is not Synced."),
    _r(Reason.GRACE_OVER, B, "core", "The grace period of an old client or key is over: it is deleted at the AS or "
       "removed from the JWKS."),
    _r(Reason.RETIRING_DELETE_REFUSED, B, "core", "The AS refused to delete an old client (401): it may still "
       "exist with someone else's changes; it is kept, reported and retried."),
    _r(Reason.KEY_ROTATED, E, "core", "A private_key_jwt key was replaced; the old one stays in the JWKS for the "
       "grace period."),
    # --- outcomes: Event reasons saying what a run did; the message names the cause
    _r(Reason.REGISTERED, E, "core", "A new client was registered (nothing was registered, or the AS lost or "
       "disowned the old one)."),
    _r(Reason.ROTATED, E, "core", "A replacement client was registered (rotation requested, period elapsed, secret "
       "nearing expiry); the old one retires after the grace period. Also stored in records written before a "
       "retiring client kept its cause."),
    _r(Reason.REPLACED, E, "core", "The spec changed and the AS offers no RFC 7592 update: a replacement client was "
       "registered with the new metadata."),
    _r(Reason.UPDATED, E, "core", "The client was updated to its spec (RFC 7592 PUT, or a new CIMD document)."),
    _r(Reason.DRIFT_CORRECTED, E, "core", "The client had been changed at the AS: the declared values were "
       "restored (RFC 7592 PUT)."),
    _r(Reason.OLD_CLIENT_DELETED, E, "core", "A retiring client's grace period was over: it was deleted at the AS "
       "(or was already gone)."),
    _r(Reason.OLD_CLIENT_NOT_DELETED, E, "core", "A retiring client's grace period was over but it could not be "
       "deleted (Warning: retried, or remove it at the AS by hand as the message says)."),
    _r(Reason.OLD_KEY_REMOVED, E, "core", "A retired private_key_jwt key's grace period was over: it was removed "
       "from the JWKS."),
    _r(Reason.IN_SYNC, C, "core", "The client is registered and the AS holds the declared metadata."),
    # --- errors (clientreg/errors.py and subclasses): causes of Ready/Synced=False and Warning events
    _r("Error", B, "core", "An unexpected failure (a bug): see the message and the logs."),
    _r("InvalidSpec", B, "core", "A document or argument is invalid: the message names the field and the rule."),
    _r("PolicyViolation", B, "core", "The spec is valid but a policy forbids it (allowedRedirectHosts, address "
       "policy)."),
    _r("NotPermitted", B, "core", "A redirect URI the server's policy does not allow, or the AS answered 403 to an "
       "RFC 7592 operation."),
    _r("RegisteredAtAnotherServer", B, "core", "The client was registered at another authorization server than "
       "the spec names now: nothing is sent. Restore the server, or delete the client and apply again."),
    _r("NamespaceNotAllowed", B, "core", "The ClusterAuthorizationServer's allowedNamespaces does not admit the "
       "client's namespace: nothing is sent to the AS."),
    _r("FetchRefused", B, "core", "A URL, or an address it resolves to, is one this process must not fetch from "
       "(SSRF guard)."),
    _r("Waiting", B, "core", "Something the resource needs is not there yet (initial access token Secret, "
       "server): retried."),
    _r("ServerError", B, "core", "The AS answered with an error or not as the RFCs promise."),
    _r("DiscoveryFailed", B, "core", "The AS metadata (RFC 8414) could not be found, parsed or trusted."),
    _r("RegistrationRejected", B, "core", "The AS refused the registration (RFC 7591 §3.2.2 error response)."),
    _r("Unsupported", B, "core", "The AS does not implement the operation needed (RFC 7592 read/update/delete, "
       "CIMD)."),
    _r("ServerUnreachable", B, "core", "The AS could not be reached (connect, TLS, timeout): retried."),
    _r("RateLimited", B, "core", "The AS answered 429 after all retries: retried after its Retry-After."),
    _r("StateError", B, "core", "The local state or the operator's record is unreadable or changed underneath."),
    # --- the operator's own
    _r("SecretExpired", C, "operator", "The client secret in the Secret has expired and no replacement exists yet."),
    _r("SecretConflict", B, "operator", "The credentials Secret's name is taken by a Secret clientreg does not "
       "manage."),
    _r("SecretRestored", E, "operator", "The credentials Secret was changed or deleted by someone else and was "
       "written again."),
    _r("RecordMoved", E, "operator", "A record Secret was migrated from the tenant's namespace to the records "
       "namespace."),
    _r("RecordRestored", E, "operator", "A record Secret was missing or changed and was written again."),
    _r("DocumentHostTaken", B, "operator", "The document host is bound to another namespace (first claimant wins)."),
    _r("DocumentPathTaken", B, "operator", "Another client already serves a document at that path."),
    _r("DocumentRefused", B, "operator", "The rendered document cannot be served (it failed validation)."),
    # --- the Pulumi provider's own status values
    _r("Failed", C, "pulumi", "The last operation failed: status_message says why; the next up retries."),
    _r("KubernetesSecretDrift", C, "pulumi", "Refresh found the kubernetes_secret changed or deleted in the "
       "cluster: the next up writes it again."),
)

BY_NAME: dict[str, ReasonInfo] = {info.name: info for info in REASONS}


def describe(name: str) -> str:
    """The one-line meaning of ``name`` (KeyError for a reason the registry does not know)."""
    return BY_NAME[name].description


def markdown_table(*, sources: frozenset[str] | None = None, kinds: frozenset[Kind] | None = None) -> str:
    """The registry as a Markdown table, for docs/ (``sources``/``kinds``: only those reasons)."""
    lines = ["| Reason | Kind | Emitted by | Meaning |", "| --- | --- | --- | --- |"]
    for info in REASONS:
        if (sources is not None and info.source not in sources) or (kinds is not None and info.kind not in kinds):
            continue
        meaning = info.description.replace("|", "\\|")
        lines.append(f"| `{info.name}` | {info.kind} | {info.source} | {meaning} |")
    return "\n".join(lines) + "\n"


#: What a Kubernetes condition can carry: causes from the core and the operator (docs/kubernetes.md).
OPERATOR_CONDITIONS = {"sources": frozenset({"core", "operator"}), "kinds": frozenset({Kind.CAUSE, Kind.BOTH})}


def main() -> None:
    print(markdown_table(), end="")


if __name__ == "__main__":
    main()


__all__ = ["BY_NAME", "OPERATOR_CONDITIONS", "REASONS", "Kind", "Reason", "ReasonInfo", "describe", "markdown_table"]
