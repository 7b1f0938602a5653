"""Reading what servers send back, without trusting any of it (RFC 6749 §5.2, RFC 6750 §3, RFC 7591 §3.2.2).

OAuth error bodies, ``WWW-Authenticate`` challenges (parsed in :mod:`clientreg.headers`), HTML error
pages: each is read leniently and bounded, and no credential ever reaches a message.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import httpx
from pydantic import SecretStr

from ._bodies import BodyRefused, decode_json
from .errors import redact
from .headers import bearer_params

__all__ = ["NOT_JSON", "OAuthError", "body_excerpt", "parse_json", "read_oauth_error", "scrub"]

# Keys whose values are credentials wherever they appear in a body we quote.
_SECRET_KEYS: Final = frozenset({"client_secret", "registration_access_token", "access_token",
                                 "refresh_token", "initial_access_token", "id_token", "password",
                                 "private_key"})
# Shorter values are not worth masking and would mangle ordinary words in a message.
_MIN_SCRUB_LEN: Final = 4


class _NotJSON:
    """Marker for a body that is not JSON (a distinct type so that ``null`` stays ``None``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final = _NotJSON()

def parse_json(content: bytes) -> Any:
    """The decoded JSON value, or :data:`NOT_JSON` (also when too deeply nested or with a repeated member:
    see :func:`clientreg._bodies.decode_json`); never raises on hostile input."""
    if not content.strip():
        return NOT_JSON
    try:
        return decode_json(content)
    except BodyRefused:
        return NOT_JSON


def _secret_values(data: Any, depth: int = 0) -> list[str]:
    """String values under credential keys anywhere in a JSON value, to scrub them from text."""
    found: list[str] = []
    if depth > 50:
        return found
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _SECRET_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_secret_values(value, depth + 1))
    elif isinstance(data, list):
        for item in data:
            found.extend(_secret_values(item, depth + 1))
    return found


def _mask(data: Any, depth: int = 0) -> Any:
    if depth > 50:
        return "…"
    if isinstance(data, dict):
        return {k: ("***" if k in _SECRET_KEYS else _mask(v, depth + 1)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v, depth + 1) for v in data]
    return data


def scrub(text: str, secrets: Iterable[SecretStr | str | None]) -> str:
    """Replace every occurrence of each known secret value in ``text``."""
    values = sorted({(s.get_secret_value() if isinstance(s, SecretStr) else s) for s in secrets if s},
                    key=len, reverse=True)
    for value in values:
        if len(value) >= _MIN_SCRUB_LEN:
            text = text.replace(value, "***")
    return text


_TAG_RE = re.compile(r"<[^>]{0,500}>")


def body_excerpt(response: httpx.Response, secrets: Iterable[SecretStr | str | None] = ()) -> str | None:
    """A short, redacted excerpt of a body for an error message; ``None`` when it is empty."""
    content = response.content
    if not content.strip():
        return None
    data = parse_json(content)
    extra: list[str] = []
    if data is NOT_JSON:
        text = content[:20_000].decode("utf-8", errors="replace")
        if "<" in text[:200]:
            # An HTML error page: the words matter, the markup does not.
            text = _TAG_RE.sub(" ", text)
    else:
        extra = _secret_values(data)
        try:
            text = _json.dumps(_mask(data), ensure_ascii=False)[:20_000]
        except (ValueError, RecursionError):
            text = "<unprintable JSON>"
    return redact(scrub(text, [*secrets, *extra]))


@dataclass(frozen=True)
class OAuthError:
    """What an error answer said, read leniently (RFC 6749 §5.2, RFC 6750 §3, RFC 7591 §3.2.2).

    ``error`` is kept only when it looks like an error code; a sentence in ``error`` (Hydra does
    that) is moved into ``error_description`` so the text is not lost.
    """

    error: str | None
    error_description: str | None
    body: str | None


_ERROR_CODE_RE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,64}")


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


# ProtocolError keeps 200 characters of a description, from the start. Servers put boilerplate
# first and the specific cause last (Hydra: "The value of one of the Client Metadata fields is
# invalid … 'metadata' cannot be set"), so a long description keeps both ends.
_DESCRIPTION_LIMIT: Final = 200


def _head_and_tail(text: str) -> str:
    if len(text) <= _DESCRIPTION_LIMIT:
        return text
    head = _DESCRIPTION_LIMIT // 3
    return f"{text[:head].rstrip()} … {text[-(_DESCRIPTION_LIMIT - head - 3):].lstrip()}"


def read_oauth_error(response: httpx.Response, *,
                     secrets: Iterable[SecretStr | str | None] = ()) -> OAuthError:
    """Extract ``error``/``error_description`` from a body or a Bearer challenge, whatever its shape."""
    secrets = list(secrets)
    data = parse_json(response.content)
    error: str | None = None
    description: str | None = None
    if isinstance(data, dict):
        raw_error = data.get("error")
        description = _as_text(data.get("error_description"))
        if isinstance(raw_error, dict):
            # Some servers nest a structured error: {"error": {"code": 400, "message": "…"}}.
            error = _as_text(raw_error.get("id")) or _as_text(raw_error.get("error"))
            nested = _as_text(raw_error.get("message")) or _as_text(raw_error.get("reason"))
            description = description or nested
        else:
            error = _as_text(raw_error)
        secrets.extend(_secret_values(data))
    challenge = bearer_params(response)
    error = error or challenge.get("error") or None
    description = description or challenge.get("error_description") or None
    if error is not None and not _ERROR_CODE_RE.fullmatch(error):
        description = f"{error}: {description}" if description else error
        error = None
    if error is not None:
        error = scrub(error, secrets)
    if description is not None:
        description = _head_and_tail(redact(scrub(description, secrets), 2000))
    return OAuthError(error=error, error_description=description, body=body_excerpt(response, secrets))
