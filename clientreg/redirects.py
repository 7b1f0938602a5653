"""Redirect URIs: their syntax, and the redirect policy an AuthorizationServer imposes on its clients.

A tenant writes redirect URIs; a platform team writes the server's ``allowedRedirectHosts`` and
``allowedRedirectSchemes``. The policy is only as good as the agreement between what clientreg reads as
the host and what a browser or the AS reads: ``https://evil.test\\.tenant-a.example.com/cb`` is a host
under ``tenant-a.example.com`` to :func:`urllib.parse.urlsplit` and ``evil.test`` to a browser. So a URI
is parsed once, and everything a second parser could read differently is refused instead of
interpreted: backslashes, userinfo, percent-encoded or non-ASCII hosts (an IDN is written as its
A-label, ``xn--…``), empty labels and trailing dots, non-canonical IPv4 numbers (``127.1``,
``0x7f.0.0.1``), IPv6 zone identifiers and IPv4-mapped IPv6, malformed ports, and any whitespace,
control, invisible-formatting or bidirectional-text character (which make a URI read differently from
what it is). What is left has one host, the same for ``urlsplit``, httpx and a WHATWG browser.

Host patterns match exactly, or ``*.suffix`` matches one or more labels before ``suffix`` (never
``suffix`` itself, never an IP address), compared as lowercase A-labels; ports are not part of the
policy. A private-use scheme (``com.example.app:/cb``, RFC 8252 §7.1) has no host that says who receives
the redirect: the scheme does. When ``allowedRedirectHosts`` is set such a URI is refused unless its
scheme is listed in ``allowedRedirectSchemes``; when ``allowedRedirectSchemes`` is set it alone restricts
private-use schemes. Neither set: no policy, only the syntax rules.

Which fields the policy covers (:data:`POLICY_FIELDS`): every URI the AS sends the user's browser, or
the user's session, to: ``redirect_uris`` (authorization responses), ``post_logout_redirect_uris``
(OpenID Connect RP-Initiated Logout), ``initiate_login_uri`` (the AS or a third party sends the browser
there to start a login: an allow-list meant to keep users on a tenant's hosts must cover it), and,
when given in additionalMetadata, ``frontchannel_logout_uri`` (loaded in the user's browser) and
``backchannel_logout_uri`` (receives logout tokens naming the user's session). Not covered: links the
AS only displays (``client_uri``, ``logo_uri``, ``tos_uri``, ``policy_uri``) and documents the AS
fetches itself (``jwks_uri``, ``sector_identifier_uri``, ``request_uris``): those send no user and no
credential anywhere, and the URL text rules of every WebUrl still apply to them.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import idna

from ._addresses import is_loopback_host
from .errors import PolicyViolation, redact

if TYPE_CHECKING:
    from .spec import AuthorizationServerSpec

__all__ = ["POLICY_FIELDS", "RedirectNotPermitted", "RedirectTarget", "check_pattern", "check_redirect_uri",
           "check_redirects", "check_scheme_name", "check_uri_text", "host_allowed", "host_pattern",
           "parse_redirect_uri", "quoted"]

#: Wire field → the field as the user wrote it: the URIs the policy covers (see the module docstring).
POLICY_FIELDS: dict[str, str] = {
    "redirect_uris": "spec.redirectUris",
    "post_logout_redirect_uris": "spec.postLogoutRedirectUris",
    "initiate_login_uri": "spec.initiateLoginUri",
    "frontchannel_logout_uri": "spec.additionalMetadata.frontchannel_logout_uri",
    "backchannel_logout_uri": "spec.additionalMetadata.backchannel_logout_uri",
}

# Why each field's host matters, for the message.
_WHY: dict[str, str] = {
    "redirect_uris": "the AS sends authorization codes and tokens there, RFC 6749 §3.1.2, §10.6",
    "post_logout_redirect_uris": "the AS sends the user there after logout, OpenID Connect RP-Initiated Logout §3",
    "initiate_login_uri": "users are sent there to start a login, OpenID Connect Registration §2",
    "frontchannel_logout_uri": "the AS loads it in the user's browser, OpenID Connect Front-Channel Logout §2",
    "backchannel_logout_uri": "the AS posts logout tokens there, OpenID Connect Back-Channel Logout §2.2",
}

#: Longest URI accepted: enough for any real redirect, small enough to bound messages and work.
MAX_URI_LENGTH = 4096

# Marks that reorder displayed text (Trojan Source, CVE-2021-42574): ALM, LRM, RLM, LRE…RLO, LRI…PDI.
#: What _bad_character refuses among ASCII characters: C0 controls, space, DEL and the backslash.
_ASCII_BAD = re.compile(r"[\x00-\x20\x7f\\]")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# RFC 3986 §2: unreserved, reserved and '%' are the only characters a URI may contain.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")  # RFC 3986 §3.1
_LDH_LABEL = re.compile(r"[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_USERINFO_RE = re.compile(r"(//)[^/?#@]*@")
_HOST_RFC = "RFC 6749 §3.1.2, RFC 3986 §3.2.2"


class RedirectNotPermitted(PolicyViolation):
    """A redirect URI the server's redirect policy (or the URI syntax it relies on) does not allow."""

    reason = "NotPermitted"


def quoted(url: str) -> str:
    """A URL the user wrote, for a message: quoted (control characters escaped), bounded, password masked."""
    return repr(redact(_USERINFO_RE.sub(r"\1***@", url), 200))


def _bad_character(c: str) -> str | None:
    if c in _BIDI:
        return "bidirectional-text controls"
    category = unicodedata.category(c)
    if c.isspace() or category in ("Cc", "Zs", "Zl", "Zp"):
        return "whitespace or control characters"
    if category in ("Cf", "Co", "Cs"):
        return "invisible formatting or private-use characters"
    if c == "\\":
        return "backslashes (browsers read one as '/', other parsers as part of the host)"
    return None


def check_uri_text(value: str) -> None:
    """Refuse characters that make a URL read differently to a person, a log, or another parser.

    A CR/LF would split a header or a log line wherever the URL is written; bidi controls reorder what
    is displayed; a backslash is '/' to a WHATWG parser and a host character to ``urlsplit``.
    """
    if value.isascii() and not _ASCII_BAD.search(value):
        return  # the common case at C speed; the loop below finds and names the character otherwise
    for c in value:
        what = _bad_character(c)
        if what:
            raise ValueError(f"{quoted(value)} must not contain {what} (U+{ord(c):04X} here)")


@dataclass(frozen=True)
class RedirectTarget:
    """A redirect URI as the policy sees it: its kind, lowercase scheme and normalised host."""

    uri: str
    kind: Literal["https", "http", "private-use"]
    scheme: str
    #: Lowercase A-labels, a canonical IPv4 address, or an IPv6 address without brackets; None if host-less.
    host: str | None
    port: int | None = None


def _ip_literal(value: str, text: str) -> str:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"{quoted(value)}: [{text}] is not an IPv6 address ({_HOST_RFC}; IPvFuture and zone "
                         "identifiers are not accepted)") from None
    if address.ipv4_mapped is not None:
        raise ValueError(f"{quoted(value)}: an IPv4-mapped IPv6 address names an IPv4 host: write "
                         f"{address.ipv4_mapped} instead")
    return address.compressed


def _dns_or_ipv4(value: str, text: str, *, what: str = "host") -> str:
    """A host name as lowercase A-labels, or a canonical dotted-quad IPv4 address."""
    if not text.isascii():
        hint = ""
        try:
            hint = f": write it as {idna.encode(text.lower(), uts46=False).decode()!r}"
        except (idna.IDNAError, UnicodeError):
            hint = " (and it is not a valid internationalized domain name either)"
        raise ValueError(f"{quoted(value)}: the {what} must be ASCII, an internationalized name as its "
                         f"A-label (xn--…), so that lookalike characters cannot pass (RFC 5890 §2.3.2.1){hint}")
    host = text.lower()
    if not host:
        raise ValueError(f"{quoted(value)} has an empty {what} ({_HOST_RFC})")
    if host.endswith("."):
        raise ValueError(f"{quoted(value)}: the {what} must not end with a dot (a fully qualified spelling "
                         "is a different string to the AS and a different origin to a browser)")
    labels = host.split(".")
    if "" in labels:
        raise ValueError(f"{quoted(value)}: the {what} has an empty label ('..' or a leading dot)")
    last = labels[-1]
    if last.isdigit() or re.fullmatch(r"0x[0-9a-f]*", last):
        # A browser (WHATWG URL §3.5) reads any host ending in a number as an IPv4 address, in decimal,
        # octal or hex, with 1 to 4 parts: only the canonical dotted quad means the same to everyone.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{quoted(value)}: {host!r} ends in a number, so browsers read it as an IPv4 "
                             "address: write the address as a canonical dotted quad (e.g. 192.0.2.1)") from None
    if len(host) > 253:
        raise ValueError(f"{quoted(value)}: the {what} is longer than 253 characters (RFC 1035 §2.3.4)")
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            raise ValueError(f"{quoted(value)}: {label!r} is not a host name label (letters, digits and '-', "
                             "at most 63, not starting or ending with '-'; RFC 1123 §2.1)")
        if label.startswith("xn--"):
            try:
                valid = idna.encode(idna.decode(label), uts46=False).decode() == label
            except (idna.IDNAError, UnicodeError):
                valid = False
            if not valid:
                raise ValueError(f"{quoted(value)}: {label!r} is not a valid IDNA A-label (RFC 5891 §5.4)")
    return host


def _authority(value: str, netloc: str) -> tuple[str, int | None, bool]:
    """(host, port, is IPv6) of an authority, refusing anything two parsers could split differently."""
    if "@" in netloc:
        raise ValueError(f"{quoted(value)} must not carry userinfo (user:password@ before the host): a person reads "
                         "the host before '@', a browser the one after it (RFC 3986 §3.2.1, RFC 9110 §4.2.4)")
    if "%" in netloc:
        raise ValueError(f"{quoted(value)}: percent-encoded bytes are not allowed in the host ({_HOST_RFC})")
    ipv6 = netloc.startswith("[")
    if ipv6:
        end = netloc.find("]")
        if end < 0:
            raise ValueError(f"{quoted(value)}: '[' without ']' in the host ({_HOST_RFC})")
        host, rest = _ip_literal(value, netloc[1:end]), netloc[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{quoted(value)}: unexpected text after the IPv6 address ({_HOST_RFC})")
    else:
        if "[" in netloc or "]" in netloc:
            raise ValueError(f"{quoted(value)}: '[' and ']' may only enclose an IPv6 address ({_HOST_RFC})")
        text, colon, port_text = netloc.partition(":")
        host, rest = _dns_or_ipv4(value, text), colon + port_text
    port = None
    if rest:
        port_text = rest[1:]
        if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
            raise ValueError(f"{quoted(value)}: {port_text!r} is not a port (1-65535, decimal digits, no "
                             "leading zero; RFC 3986 §3.2.3)")
        port = int(port_text)
    return host, port, ipv6


def parse_redirect_uri(value: str) -> RedirectTarget:
    """RFC 6749 §3.1.2 and RFC 8252 §7: an absolute URI without fragment; https, http to a loopback host,
    or a private-use scheme. Raises ValueError naming the rule."""
    if len(value) > MAX_URI_LENGTH:
        raise ValueError(f"{quoted(value)} is longer than {MAX_URI_LENGTH} characters")
    check_uri_text(value)
    if "#" in value:
        raise ValueError(f"{quoted(value)} must not include a fragment (RFC 6749 §3.1.2)")
    if not _URI_CHARS.fullmatch(value):
        bad = next(c for c in value if not _URI_CHARS.fullmatch(c))
        # Named by code point: a Cyrillic a (U+0430) or a full-width stop (U+FF0E) looks like the ASCII one.
        hint = ", a host as its A-label (xn--…) so that lookalikes cannot pass" if not bad.isascii() else ""
        raise ValueError(f"{quoted(value)}: {bad!r} (U+{ord(bad):04X}) is not allowed in a URI (RFC 3986 §2, "
                         f"RFC 6749 §3.1.2): percent-encode it in a path or query{hint}")
    if _PCT.search(value):
        raise ValueError(f"{quoted(value)}: '%' must start a percent-encoded byte such as %2F (RFC 3986 §2.1)")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(f"{quoted(value)} is not a valid URI (RFC 3986)") from None
    if not parts.scheme or not _SCHEME.fullmatch(parts.scheme) or not value.lower().startswith(parts.scheme + ":"):
        raise ValueError(f"{quoted(value)} must be an absolute URI (RFC 6749 §3.1.2)")
    if any(c in parts.path + parts.query for c in "[]"):
        raise ValueError(f"{quoted(value)}: '[' and ']' are only allowed around an IPv6 host: percent-encode them "
                         "(%5B, %5D) in a path or query (RFC 3986 §3.3, §3.4)")
    scheme = parts.scheme.lower()
    has_authority = value[len(scheme) + 1:].startswith("//")
    web = scheme in ("https", "http")
    if web and not (has_authority and parts.netloc):
        raise ValueError(f"{quoted(value)} has no host: write {scheme}://host/path (RFC 6749 §3.1.2)")
    if not web:
        check_scheme_name(scheme, what=f"{quoted(value)}: a private-use URI scheme")
    host, port, ipv6 = _authority(value, parts.netloc) if has_authority and parts.netloc else (None, None, False)
    if scheme == "https":
        return RedirectTarget(value, "https", scheme, host, port)
    if scheme == "http":
        if not is_loopback_host(f"[{host}]" if ipv6 else host):
            raise ValueError(f"{quoted(value)}: plain http is allowed only for loopback redirects "
                             "(127.0.0.1, [::1], localhost; RFC 8252 §7.3): use https")
        return RedirectTarget(value, "http", scheme, host, port)
    # RFC 8252 §7.1: com.example.app:/cb; an authority, when there is one, obeys the same rules.
    return RedirectTarget(value, "private-use", scheme, host, port)


def check_redirect_uri(value: str) -> str:
    """The syntax rules alone, for the spec models' validators."""
    parse_redirect_uri(value)
    return value


def check_scheme_name(value: str, *, what: str | None = None) -> str:
    """RFC 8252 §7.1: a private-use scheme is an RFC 3986 scheme name that is a reverse domain name."""
    what = what or f"{value!r}"
    if not _SCHEME.fullmatch(value) or "." not in value or value.startswith(".") or value.endswith(".") \
            or ".." in value:
        raise ValueError(f"{what} must be a reverse domain name such as com.example.app (RFC 8252 §7.1; "
                         "letters, digits, '+', '-' and '.', RFC 3986 §3.1)")
    return value


def check_pattern(pattern: str) -> str:
    """One allowedRedirectHosts entry: a host name, '*.' and a host name, or an IP address. Returns it
    normalised (lowercase A-labels; IPv6 compressed, without brackets)."""
    check_uri_text(pattern)
    if any(c in pattern for c in "@/?#%"):
        raise ValueError(f"{quoted(pattern)} must be a host name, optionally starting with '*.', or an IP "
                         "address: no scheme, path, userinfo or percent-encoding")
    wildcard = pattern.startswith("*.")
    bare = pattern[2:] if wildcard else pattern
    if "*" in bare:
        raise ValueError(f"{quoted(pattern)}: '*' is only allowed as a whole leading label ('*.example.com')")
    if any(c in bare for c in ":[]"):
        text = bare[1:-1] if bare.startswith("[") and bare.endswith("]") else bare
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"{quoted(pattern)} must be a host name or an IP address without a port: the "
                             "policy allows hosts, on any port") from None
        if wildcard:
            raise ValueError(f"{quoted(pattern)}: a wildcard matches host names, not IP addresses")
        return _ip_literal(pattern, text)
    host = _dns_or_ipv4(pattern, bare, what="pattern")
    if wildcard:
        if _is_ip(host):
            raise ValueError(f"{quoted(pattern)}: a wildcard matches host names, not IP addresses")
        return "*." + host
    return host


def host_pattern(value: str) -> str:
    """:func:`check_pattern` for the spec models: validated, kept as written (matching normalises)."""
    check_pattern(value)
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(host: str, patterns: list[str]) -> bool:
    """``host`` (as normalised by :func:`parse_redirect_uri`) matches one of ``patterns`` (normalised by
    :func:`check_pattern`): exactly, or ``*.suffix`` with one or more labels before the suffix."""
    return any(host == p or (p.startswith("*.") and not _is_ip(host) and host.endswith(p[1:]))
               for p in patterns)


def _uris(metadata: Mapping[str, Any], wire: str) -> list[tuple[str, Any]]:
    value = metadata.get(wire)
    if value is None:
        return []
    field = POLICY_FIELDS[wire]
    if isinstance(value, list):
        return [(f"{field}[{i}]", v) for i, v in enumerate(value)]
    return [(field, value)]


def check_redirects(spec: AuthorizationServerSpec, metadata: Mapping[str, Any], *,
                    document: str | None = None) -> None:
    """The one enforcement point: every URI of :data:`POLICY_FIELDS` in ``metadata`` (wire names) is a
    valid redirect URI and allowed by ``spec``'s redirect policy. Run before any request is sent, for
    DCR and CIMD clients alike, in plan and apply. Raises :class:`RedirectNotPermitted`."""
    hosts, schemes = list(spec.allowed_redirect_hosts), list(spec.allowed_redirect_schemes)
    try:
        patterns = [check_pattern(p) for p in hosts]
        allowed_schemes = {check_scheme_name(s).lower() for s in schemes}
    except ValueError as exc:  # the models validate both: only a hand-built spec gets here
        raise RedirectNotPermitted(str(exc), document=document, field="spec.allowedRedirectHosts",
                                   rule="allowedRedirectHosts") from None
    # Without a policy only the redirect URIs proper are checked, as the spec models already do.
    fields = POLICY_FIELDS if hosts or schemes else ("redirect_uris", "post_logout_redirect_uris")
    for wire in fields:
        for field, uri in _uris(metadata, wire):
            if not isinstance(uri, str):
                raise RedirectNotPermitted(f"expected a URI string, got a {type(uri).__name__}", document=document,
                                           field=field, rule="RFC 6749 §3.1.2")
            try:
                target = parse_redirect_uri(uri)
            except ValueError as exc:
                raise RedirectNotPermitted(str(exc), document=document, field=field,
                                           rule="RFC 6749 §3.1.2, RFC 8252 §7") from None
            if target.kind == "private-use":
                if (hosts or schemes) and target.scheme not in allowed_schemes:
                    listed = f"allowedRedirectSchemes {schemes}" if schemes else "no allowedRedirectSchemes"
                    raise RedirectNotPermitted(
                        f"{quoted(uri)}: the private-use scheme {target.scheme!r} is not allowed: "
                        f"the server sets allowedRedirectHosts and {listed} (a private-use scheme names the app "
                        "that receives the code, RFC 8252 §7.1, §8.4)", document=document, field=field,
                        rule="allowedRedirectSchemes")
            elif hosts and (target.host is None or not host_allowed(target.host, patterns)):
                raise RedirectNotPermitted(
                    f"{quoted(uri)}: host {target.host!r} matches none of the server's allowedRedirectHosts "
                    f"{hosts} ({_WHY[wire]})", document=document, field=field, rule="allowedRedirectHosts")
