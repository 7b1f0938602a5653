"""Published documents (CIMD, JWKS at jwks_uri) of every OAuthClient this operator holds, served read-only.

Every replica, leader or standby, answers ``GET /documents/<host>/<path>`` from a :class:`DocumentIndex`
(``<host>/<path>`` is :func:`clientreg.publish.static_path` of the URL, bytes from
:func:`clientreg.publish.render`). The record Secrets are the single source: :mod:`.docfeed` lists them in
every replica; the leader's reconciler also puts a client's documents as soon as it writes its record, so
that its own check of what is served does not wait for the next list.

Who may serve what (the same answer in every replica and after every restart, because it depends only on
the records and the operator's flags):

1. **Explicit bindings** (``--document-host NAMESPACE=PATTERN``, chart ``documents.hostNamespaces``): the
   platform binds host patterns to namespaces. A host matching any binding is served only to OAuthClients
   of the namespaces bound to it; a client of another namespace gets ``DocumentHostTaken``.
2. **First claimant**: a host no binding matches belongs to the namespace of its oldest claimant, the
   OAuthClient with the earliest ``creationTimestamp`` (then the lowest UID) among those with a document
   there. A later claimant from another namespace gets ``DocumentHostTaken`` and is not served.
3. **One document per path**: within the namespaces a host belongs to, the oldest claimant of a path keeps
   it; a newer client with a different document there gets ``DocumentPathTaken`` (identical documents are
   simply served). A path is never "served to neither".

A tenant cannot grant itself a host: its AuthorizationServer's ``allowedRedirectHosts`` is tenant-controlled,
and a ClusterAuthorizationServer's is shared by every namespace it allows, so neither separates tenants; the
platform does that with bindings. Without bindings, a tenant can still squat a host nobody uses yet (and
keep it while it holds a document there): bind every tenant host where tenants share an operator.
Documents are public by definition: a document holding a private or symmetric key is never served
(:func:`clientreg.publish.render` refuses it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clientreg import publish
from clientreg.errors import ClientregError

log = logging.getLogger(__name__)

#: Route prefix on the operator's HTTP endpoint.
PREFIX = "/documents/"
#: Sorts after every real creationTimestamp: a claim of unknown age never displaces a known one.
_UNKNOWN_AGE = datetime.max.replace(tzinfo=UTC)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

HOST_TAKEN = "DocumentHostTaken"
PATH_TAKEN = "DocumentPathTaken"
INVALID_DOCUMENT = "DocumentRefused"


class DocumentNotServed(ClientregError):
    """A document of this client is not served (see the module docstring for the rule)."""

    reason = HOST_TAKEN

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class HostBinding:
    """``NAMESPACE=PATTERN``: documents at hosts matching ``PATTERN`` are served only to that namespace
    (with every other binding of the same host). ``*.example.com`` matches one or more labels."""

    namespace: str
    pattern: str

    @classmethod
    def parse(cls, text: str) -> HostBinding:
        namespace, sep, pattern = text.partition("=")
        pattern = pattern.strip().lower().rstrip(".")
        if not sep or not _DNS1123_LABEL.match(namespace.strip()):
            raise ValueError(f"{text!r}: expected NAMESPACE=HOST_PATTERN with a namespace name (DNS-1123 label)")
        if len(pattern) > 253 or not _HOST.match(pattern):
            raise ValueError(f"{text!r}: the pattern must be a host name, optionally starting with '*.'")
        return cls(namespace.strip(), pattern)

    def matches(self, host: str) -> bool:
        if self.pattern.startswith("*."):
            return host.endswith(self.pattern[1:]) and len(host) > len(self.pattern) - 1
        return host == self.pattern


def _hostname(path: str) -> str:
    """The host of a static path ``host[:port]/…``, without the port (bindings name hosts, not ports)."""
    host = path.split("/", 1)[0]
    return host.rsplit(":", 1)[0] if not host.endswith("]") and ":" in host else host


def parse_timestamp(text: Any) -> datetime:
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return _UNKNOWN_AGE


@dataclass(frozen=True)
class Claim:
    """One OAuthClient's documents: static path → rendered bytes, and what orders it among claimants."""

    namespace: str
    name: str
    created: datetime = _UNKNOWN_AGE
    uid: str = ""
    documents: Mapping[str, bytes] = field(default_factory=dict)
    #: Documents that could not be rendered (private key members, unmappable URLs): path or URL → why.
    invalid: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    #: When the client's registration was first recorded (the record's ``registered_at``, to the microsecond):
    #: creationTimestamp has whole seconds, and two tenants creating clients in the same second must not
    #: have their dispute decided by their UIDs, i.e. by chance. Every replica reads it from the record.
    claimed: datetime = _UNKNOWN_AGE

    def order(self) -> tuple[datetime, datetime, str, str, str]:
        return self.created, self.claimed, self.uid, self.namespace, self.name


def claim(namespace: str, name: str, documents: Mapping[str, Mapping[str, Any]], *, created: datetime = _UNKNOWN_AGE,
          uid: str = "", claimed: datetime = _UNKNOWN_AGE) -> Claim:
    """Render ``documents`` (URL → JSON, :func:`clientreg.publish.documents`) into a claim."""
    rendered: dict[str, bytes] = {}
    invalid: dict[str, str] = {}
    for url, document in documents.items():
        try:
            rendered[str(publish.static_path(url))] = publish.render(document)
        except ClientregError as exc:
            log.warning("OAuthClient %s/%s: document not served: %s", namespace, name, exc)
            invalid[url] = str(exc)
    return Claim(namespace, name, created, uid, rendered, invalid, claimed)


@dataclass(frozen=True)
class _Resolved:
    served: dict[str, bytes]
    refused: dict[tuple[str, str], list[tuple[str, str, str]]]  # client → [(path, reason, message)]


def resolve(claims: Iterable[Claim], bindings: Sequence[HostBinding] = ()) -> _Resolved:
    """Apply the rule of the module docstring to every claim at once (pure: tests call it directly)."""
    served: dict[str, tuple[bytes, Claim]] = {}
    holders: dict[str, str] = {}  # unbound host → namespace of its oldest claimant
    refused: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for c in sorted(claims, key=Claim.order):
        for path, body in sorted(c.documents.items()):
            host = _hostname(path)
            bound = {b.namespace for b in bindings if b.matches(host)}
            if bound and c.namespace not in bound:
                refused.setdefault(c.key, []).append((path, HOST_TAKEN, (
                    f"host {host} is bound to other namespaces by the operator's configuration "
                    "(--document-host / documents.hostNamespaces); ask the platform team to bind it to this one")))
                continue
            if not bound and holders.setdefault(host, c.namespace) != c.namespace:
                refused.setdefault(c.key, []).append((path, HOST_TAKEN, (
                    f"host {host} is held by an older OAuthClient of another namespace; only the platform can "
                    "give it to this namespace (--document-host / documents.hostNamespaces)")))
                continue
            held = served.get(path)
            if held is None:
                served[path] = (body, c)
            elif held[0] != body:
                refused.setdefault(c.key, []).append((path, PATH_TAKEN, (
                    f"OAuthClient {held[1].name}, older, serves a different document at {path}")))
        for url, why in c.invalid.items():
            refused.setdefault(c.key, []).append((url, INVALID_DOCUMENT, why))
    return _Resolved({path: body for path, (body, _) in served.items()}, refused)


class DocumentIndex:
    """Claims per OAuthClient, resolved into what is served. Thread-safe: reconciles run in worker threads,
    the record feed in another."""

    def __init__(self, bindings: Sequence[HostBinding] = ()) -> None:
        self.bindings = tuple(bindings)
        self._lock = threading.Lock()
        #: client → (claim or None for "withdrawn", monotonic time of a direct put or None when listed).
        self._claims: dict[tuple[str, str], tuple[Claim | None, float | None]] = {}
        self._resolved: _Resolved | None = None

    # --- writers -------------------------------------------------------------------------------------------

    def put(self, namespace: str, name: str, documents: Mapping[str, Mapping[str, Any]], *,
            owner: Mapping[str, Any] | None = None, claimed: datetime = _UNKNOWN_AGE) -> None:
        """The leader's direct update for one client (``owner``: its OAuthClient, for creationTimestamp and
        UID). Empty ``documents`` withdraws the client's claim."""
        meta = (owner or {}).get("metadata") or {}
        c = claim(namespace, name, documents, created=parse_timestamp(meta.get("creationTimestamp")),
                  uid=str(meta.get("uid") or ""), claimed=claimed)
        new = c if c.documents or c.invalid else None
        with self._lock:
            old = self._claims.get((namespace, name))
            self._claims[(namespace, name)] = (new, time.monotonic())
            if (old[0] if old is not None else None) != new:  # most reconciles change nothing here
                self._resolved = None

    def drop(self, namespace: str, name: str) -> None:
        self.put(namespace, name, {})

    def replace_all(self, claims: Iterable[Claim], *, listed_since: float) -> None:
        """The record feed's full view, from a list that started at ``listed_since`` (monotonic). A direct
        put made after that moment is newer than the list and is kept as put."""
        fresh: dict[tuple[str, str], tuple[Claim | None, float | None]] = {c.key: (c, None) for c in claims}
        with self._lock:
            for key, (c, put_at) in self._claims.items():
                if put_at is not None and put_at >= listed_since:
                    fresh[key] = (c, put_at)
            self._claims = fresh
            self._resolved = None

    # --- readers -------------------------------------------------------------------------------------------

    def _current(self) -> _Resolved:
        # Called with the lock held; resolved once per change, not once per request.
        if self._resolved is None:
            self._resolved = resolve((c for c, _ in self._claims.values() if c is not None), self.bindings)
        return self._resolved

    def get(self, path: str) -> bytes | None:
        """The document at ``<host>/<path>``; None when no client may serve one there."""
        host, _, rest = path.strip("/").partition("/")
        key = f"{host.lower()}/{rest}"  # static_path lowercases the host, never the path
        with self._lock:
            return self._current().served.get(key)

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(self._current().served)

    def refusal(self, namespace: str, name: str) -> DocumentNotServed | None:
        """Why a document of this client is not served (the first reason), for its Ready condition."""
        with self._lock:
            refused = self._current().refused.get((namespace, name))
        if not refused:
            return None
        path, reason, message = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        return DocumentNotServed(f"the document at {path} is not served: {message}{more}", reason=reason)
