"""One exception hierarchy, rooted in :class:`ClientregError`.

Every error renders to one line a person can act on. Nothing here ever holds a secret: bodies
from the AS are truncated and passed through :func:`redact` before they are kept.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_BODY_LIMIT = 300
#: What of an AS's error_description a summary keeps (status conditions, events).
SUMMARY_DESCRIPTION_LIMIT = 100
_SUMMARY_LIMIT = 600
# RFC 6749 §5.2: error = 1*NQSCHAR (printable ASCII without '"' and '\\'); codes are single tokens.
_OAUTH_ERROR_CODE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,64}")

# Values of these keys are replaced wherever they appear in a body we keep for a message.
_SECRET_KEYS = ("client_secret", "registration_access_token", "access_token", "refresh_token",
                "initial_access_token", "id_token", "software_statement", "private_key", "d", "p", "q",
                "dp", "dq", "qi", "k")
_SECRET_RE = re.compile(
    r'("(?:' + "|".join(_SECRET_KEYS) + r')"\s*:\s*)"[^"]*"'
    r"|((?:" + "|".join(_SECRET_KEYS[:7]) + r")=)[^&\s]+"
)
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


# Control characters (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width joiners),
# line/paragraph separators and lone surrogates: none belongs in a message, and terminals act on several
# (ESC starts a CSI sequence that can rewrite the screen, U+202E reverses what follows).
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def is_unprintable(char: str) -> bool:
    """True for a control, format (bidi), separator or surrogate character."""
    return unicodedata.category(char) in _UNPRINTABLE_CATEGORIES


#: The ASCII characters of those categories (all Cc): a regex answers for an ASCII string at C speed, where a
#: per-character unicodedata lookup cost a registration's answer ~0.2 ms (bench/side_by_side.py, yappi).
_ASCII_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f]")
#: The same plus what str.isspace() is true for in ASCII (space, and \x1c-\x1f already above).
_ASCII_SPACE_OR_UNPRINTABLE_RE = re.compile(r"[\x00-\x20\x7f]")


def first_unprintable(text: str) -> int | None:
    """The position of the first character :func:`is_unprintable` is true for, or None."""
    if text.isascii():
        found = _ASCII_UNPRINTABLE_RE.search(text)
        return found.start() if found else None
    return next((i for i, c in enumerate(text) if is_unprintable(c)), None)


def has_space_or_unprintable(text: str) -> bool:
    """True when ``text`` holds whitespace or a character :func:`is_unprintable` is true for."""
    if text.isascii():
        return _ASCII_SPACE_OR_UNPRINTABLE_RE.search(text) is not None
    return any(c.isspace() or is_unprintable(c) for c in text)


def printable(text: str) -> str:
    """``text`` with every unprintable character but newline and tab shown as an escape (``\\x1b``,
    ``\\u202e``): what a server sent stays visible, and nothing reaches a terminal that it would act on."""
    if text.isascii():
        return _ASCII_CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return "".join(_escape(c) if c not in "\n\t" and is_unprintable(c) else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def redact(text: str, limit: int = _BODY_LIMIT) -> str:
    """Truncate ``text``, mask anything that looks like a credential, and escape unprintable characters."""
    text = _SECRET_RE.sub(lambda m: (m.group(1) or m.group(2)) + ('"***"' if m.group(1) else "***"), text)
    text = _BEARER_RE.sub(r"\1***", text)
    text = printable(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + "…"


def status_text(text: str, limit: int) -> str:
    """``text`` fit for a status condition or an event: no control, format (bidi overrides, zero-width) or
    unassigned characters, whitespace collapsed, at most ``limit`` characters."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp") or (category == "Zs" and ch != " "):
            kept.append(" ")  # a line break still separates words
        elif category[0] != "C":
            kept.append(ch)
    flat = " ".join("".join(kept).split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


class ClientregError(Exception):
    """Base of every error clientreg raises on purpose."""

    #: CLI exit code for this family of errors.
    exit_code = 1
    #: A short CamelCase reason used for conditions and events.
    reason = "Error"

    def __init__(self, message: str) -> None:
        # Messages quote what servers and documents said: escaped once here, safe for every front end.
        message = printable(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def summary(self) -> str:
        """The message as status conditions and events carry it: printable and bounded. Tenants read those,
        so whatever a server said reaches them only through :meth:`ProtocolError.summary`."""
        return status_text(self.message, _SUMMARY_LIMIT)


# --- configuration --------------------------------------------------------------------------

class ConfigurationError(ClientregError):
    """A document the user wrote is wrong. Names the source, document, field and rule."""

    exit_code = 2
    reason = "InvalidSpec"

    def __init__(self, message: str, *, source: str | None = None, document: str | None = None,
                 field: str | None = None, rule: str | None = None) -> None:
        self.source, self.document, self.field, self.rule = source, document, field, rule
        where = ": ".join(p for p in (source, document, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class PolicyViolation(ConfigurationError):
    """The spec is valid but a server-side policy of ours (allowedRedirectHosts, SSRF guard) forbids it."""

    reason = "PolicyViolation"


class NamespaceNotAllowed(PolicyViolation):
    """A ClusterAuthorizationServer's spec.allowedNamespaces does not admit the OAuthClient's namespace."""

    reason = "NamespaceNotAllowed"


class RegisteredAtAnotherServer(PolicyViolation):
    """The record of a registered client names another authorization server than the spec does.

    Writing this spec's metadata to that client would apply one server's policy (allowedRedirectHosts,
    addresses) to a client at another, with a token the new server never issued. The server of a
    registered client does not change: the operator's CRD forbids it once ``status.clientId`` is set, the
    Pulumi plugin replaces the resource, and here the loop refuses before any request."""

    reason = "RegisteredAtAnotherServer"


class DependencyNotReady(ClientregError):
    """Something the resource needs is not there yet (IAT Secret, server document). Wait, do not fail."""

    exit_code = 3
    reason = "Waiting"


# --- protocol -------------------------------------------------------------------------------

class ProtocolError(ClientregError):
    """The AS answered, but not with what the RFCs promise, or with an error."""

    exit_code = 4
    reason = "ServerError"

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None,
                 error_description: str | None = None, body: str | None = None,
                 url: str | None = None) -> None:
        self.status = status
        self.error = error
        self.error_description = error_description
        self.body = redact(body) if body else None
        self.url = url
        #: clientreg's own words, before anything the server said is appended.
        self.detail = message
        parts = [message]
        if status is not None:
            parts.append(f"HTTP {status}")
        if error:
            parts.append(f"error={error}")
        if error_description:
            parts.append(redact(error_description, 200))
        elif self.body and not error:
            parts.append(f"body: {self.body}")
        super().__init__(" | ".join(parts))

    def summary(self) -> str:
        """What the server said, reduced to what is safe to show a tenant: the HTTP status, the OAuth
        ``error`` code when it is one (RFC 6749 §5.2), and a short printable excerpt of
        ``error_description``; never a body, which could be any in-cluster service's page."""
        parts = [status_text(self.detail, _SUMMARY_LIMIT)]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error and _OAUTH_ERROR_CODE.fullmatch(self.error):
            parts.append(f"error={self.error}")
        if self.error_description:
            # Unprintable characters dropped first (redact would show them as escapes), then credentials masked.
            shown = redact(status_text(self.error_description, 2000), 2000)
            parts.append(status_text(shown, SUMMARY_DESCRIPTION_LIMIT))
        return " | ".join(parts)


class DiscoveryError(ProtocolError):
    """Metadata could not be found, parsed or trusted (RFC 8414 §3.3 issuer mismatch included)."""

    reason = "DiscoveryFailed"


class RegistrationError(ProtocolError):
    """RFC 7591 §3.2.2 error response: invalid_redirect_uri, invalid_client_metadata, …"""

    reason = "RegistrationRejected"


class ClientGone(ProtocolError):
    """RFC 7592 §2.1: the client no longer exists (404, or 401 invalid_token on some servers)."""

    reason = "ClientGoneAtServer"


class CredentialsRejected(ProtocolError):
    """RFC 7592 §2: 401 invalid_token — the registration access token is not accepted."""

    reason = "CredentialsRejected"


class NotPermitted(ProtocolError):
    """RFC 7592 §2: 403 — the AS does not allow this operation for this client."""

    reason = "NotPermitted"


class OperationUnsupported(ProtocolError):
    """The AS does not implement this RFC 7592 operation (405, or no registration_client_uri)."""

    reason = "Unsupported"


class TransportError(ClientregError):
    """The AS could not be reached: connect error, TLS failure, timeout, retries exhausted."""

    exit_code = 5
    reason = "ServerUnreachable"

    def __init__(self, message: str, *, url: str | None = None, retry_after: float | None = None) -> None:
        self.url = url
        self.retry_after = retry_after
        super().__init__(message)


class RateLimited(TransportError):
    """429 after all retries; ``retry_after`` says when the AS wants to hear from us again."""

    reason = "RateLimited"


class StateError(ClientregError):
    """The local state (or the operator's records) is unreadable or was changed underneath us."""

    exit_code = 6
    reason = "StateError"


def describe(exc: BaseException) -> dict[str, Any]:
    """A dict for JSON output and status messages: never includes secrets."""
    out: dict[str, Any] = {"reason": getattr(exc, "reason", type(exc).__name__), "message": str(exc)}
    if isinstance(exc, ProtocolError):
        out.update({k: v for k, v in (("status", exc.status), ("error", exc.error)) if v is not None})
    return out
