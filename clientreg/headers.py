"""Reading the response headers a server chose: ``Retry-After`` and ``WWW-Authenticate``.

Both come from the AS and are read leniently and boundedly: garbage reads as "not said", never as an
exception, and a delay is never longer than :data:`MAX_RETRY_AFTER` (a server asking for 10^308 seconds
would otherwise overflow every date computed from it downstream, a scheduler's included).
"""

from __future__ import annotations

import datetime
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

__all__ = ["MAX_RETRY_AFTER", "Challenge", "bearer_params", "parse_challenges", "parse_retry_after"]

#: The longest delay an AS can ask for: a day. Longer requests are heard again after a day.
MAX_RETRY_AFTER: Final = 86_400.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date, at most :data:`MAX_RETRY_AFTER`; ``None`` when absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # NaN and infinities are not delays a person meant to send.
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return min(MAX_RETRY_AFTER, max(0.0, seconds))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 9110 §5.6.7: HTTP-dates are always GMT.
        when = when.replace(tzinfo=datetime.UTC)
    return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - now))


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge (RFC 9110 §11.6.1): scheme in lower case, params by lower name."""

    scheme: str
    params: Mapping[str, str]


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_BARE_VALUE_RE = re.compile(r"[^,\s]*")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value leniently; garbage ends parsing, it never raises.

    Commas separate both challenges and their parameters, so a token not followed by ``=``
    starts a new challenge.
    """
    out: list[tuple[str, dict[str, str]]] = []
    pos, n = 0, len(header)
    while pos < n:
        while pos < n and header[pos] in " \t,":
            pos += 1
        m = _TOKEN_RE.match(header, pos)
        if not m:
            break
        name, pos = m.group(), m.end()
        after = pos
        while after < n and header[after] in " \t":
            after += 1
        if not (out and after < n and header[after] == "="):
            out.append((name.lower(), {}))
            # A token68 (credentials-style value) may follow the scheme: skip it.
            t = _TOKEN68_RE.match(header, after)
            if t:
                following = t.end()
                while following < n and header[following] in " \t":
                    following += 1
                if following >= n or header[following] == ",":
                    pos = t.end()
            continue
        pos = after + 1
        while pos < n and header[pos] in " \t":
            pos += 1
        if pos < n and header[pos] == '"':
            pos += 1
            chars: list[str] = []
            while pos < n and header[pos] != '"':
                if header[pos] == "\\" and pos + 1 < n:
                    pos += 1
                chars.append(header[pos])
                pos += 1
            pos += 1
            value = "".join(chars)
        else:
            m2 = _BARE_VALUE_RE.match(header, pos)
            value, pos = (m2.group(), m2.end()) if m2 else ("", pos)
        out[-1][1].setdefault(name.lower(), value)
    return [Challenge(scheme, params) for scheme, params in out]


def bearer_params(response: httpx.Response) -> Mapping[str, str]:
    """Parameters of the first Bearer challenge in any ``WWW-Authenticate`` header (RFC 6750 §3)."""
    for value in response.headers.get_list("www-authenticate"):
        for challenge in parse_challenges(value):
            if challenge.scheme == "bearer":
                return challenge.params
    return {}
