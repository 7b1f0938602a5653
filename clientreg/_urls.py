"""The URL policy every request to an authorization server passes before a connection is opened."""

from __future__ import annotations

import httpx

from ._addresses import is_loopback_host
from .errors import ConfigurationError, PolicyViolation, has_space_or_unprintable, redact

__all__ = ["check_url", "show_url"]


def show_url(url: str) -> str:
    """A URL fit for a message: bounded, and with credential-looking query values masked."""
    return redact(url, 200)


def check_url(url: str, *, allow_insecure_loopback: bool = True) -> httpx.URL:
    """Refuse a URL before anything is sent to it.

    https is required (RFC 7591 §3, RFC 7592 §2, RFC 8414 §3 all demand TLS because bearer
    tokens and client secrets travel on these requests); plain http is accepted for loopback
    hosts only, and only when ``allow_insecure_loopback`` is set, so local development servers
    work. Userinfo is refused (RFC 9110 §4.2.4 forbids it in http(s) URIs and it would put a
    password in logs); a fragment is refused because it means the URL was pasted from a browser
    and is not what the AS published.
    """
    shown = show_url(url)
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"'{shown}' is not a URL", rule="url")
    if len(url) > 8192:
        raise ConfigurationError(f"'{shown}' is {len(url)} characters long, more than the 8192 accepted", rule="url")
    if has_space_or_unprintable(url):
        raise ConfigurationError(f"'{shown}' contains whitespace, control or bidi characters", rule="url")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ConfigurationError(f"'{shown}' is not a valid URL", rule="url") from None
    if parsed.userinfo:
        # Do not echo the URL: the userinfo is the very thing that must not be shown.
        raise ConfigurationError(
            f"'{parsed.scheme}://…@{parsed.host}…' carries userinfo (user:password@): RFC 9110 §4.2.4 "
            "forbids it in http(s) URIs; pass credentials as tokens instead", rule="no-userinfo")
    if parsed.fragment or "#" in url:
        raise ConfigurationError(f"'{shown}' has a fragment (#…): an endpoint URL never has one",
                                 rule="no-fragment")
    if not parsed.host:
        raise ConfigurationError(f"'{shown}' has no host", rule="url")
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http":
        if is_loopback_host(parsed.host):
            if allow_insecure_loopback:
                return parsed
            raise PolicyViolation(
                f"'{shown}' uses plain http: https is required (RFC 7591 §3, RFC 8414 §3 demand TLS) and "
                "insecure loopback URLs are disabled here", rule="https-required")
        raise PolicyViolation(
            f"'{shown}' uses plain http: https is required (RFC 7591 §3, RFC 8414 §3 demand TLS); plain "
            "http is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost)", rule="https-required")
    raise ConfigurationError(f"'{shown}' has scheme '{parsed.scheme}': only https is supported",
                             rule="https-required")
