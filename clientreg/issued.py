"""What an authorization server issues (RFC 7591 §3.2.1, RFC 7592 §3), checked before anything keeps it.

A value refused here is never saved: a hostile or broken AS must not be able to store a record that
claims to work and does not, nor one that crashes every later run. The rules:

- ``client_id``: a string (RFC 7591 §3.2.1), at most :data:`MAX_CLIENT_ID` characters, no control or
  bidirectional-formatting characters (RFC 6749 Appendix A.1 allows visible characters only). It is
  shown in status, events, logs and tables, so a right-to-left override there would spoof what people read.
- ``client_secret``: a string when present, at most :data:`MAX_CLIENT_SECRET` characters, no control
  characters (RFC 6749 Appendix A.2; ``clientreg credentials`` prints it to a terminal).
- ``registration_access_token``: a string when present, at most :data:`MAX_REGISTRATION_ACCESS_TOKEN`
  characters of visible ASCII, because it travels in an ``Authorization: Bearer`` header (RFC 6750 §2.1).
- ``registration_client_uri``: an absolute https URL (plain http to loopback hosts only), at most
  :data:`MAX_URI` characters (RFC 7592 §3).
- ``null`` and ``""`` read as "not sent" for the optional fields (Hydra omits the secret and the RAT on
  a read); any other type is refused.
- Timestamps (``client_id_issued_at``, ``client_secret_expires_at``) are read leniently (numbers as
  strings are common) and clamped to what a date can represent (:data:`MAX_TIMESTAMP`); negative, NaN,
  boolean or unreadable values read as "not said". They are never refused: the client exists at the AS
  by then, and a wrong date is no reason to lose its credentials.

Caps: every real server we know of issues UUID-sized client IDs (Keycloak, Hydra, Okta, Auth0, Entra:
20-40 characters), secrets of 32-128 characters and RATs up to ~2 KB (Keycloak's are signed JWTs). The
caps leave an order of magnitude of headroom and keep one record far below a Kubernetes Secret's 1 MiB.

The rest of the answer (the client's metadata as the AS holds it) is kept to compare with the spec, and
is bounded too (:func:`metadata`): a field longer than :data:`MAX_METADATA_FIELD` bytes of JSON is left
out, and so are the largest remaining ones until the whole fits in :data:`MAX_METADATA`. An AS may answer
with up to a megabyte; without this bound a record could outgrow the Secret it is persisted in, and a
registration whose answer cannot be persisted would be repeated on every run. A declared value that was
left out reads as drift, which is what it is from the spec's side: the AS holds something nobody can keep.
Error messages give lengths and positions, never the value of a credential.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any, Final

from pydantic import SecretStr

from .errors import ClientregError, ProtocolError, first_unprintable
from .http import check_url

__all__ = [
    "MAX_CLIENT_ID",
    "MAX_CLIENT_SECRET",
    "MAX_METADATA",
    "MAX_METADATA_FIELD",
    "MAX_REGISTRATION_ACCESS_TOKEN",
    "MAX_TIMESTAMP",
    "MAX_URI",
    "client_id",
    "client_secret",
    "metadata",
    "registration_access_token",
    "registration_client_uri",
    "timestamp",
]

MAX_CLIENT_ID: Final = 512
MAX_CLIENT_SECRET: Final = 4096
MAX_REGISTRATION_ACCESS_TOKEN: Final = 8192
MAX_URI: Final = 2048
#: Bytes of JSON: one metadata field (a JWKS of a dozen RSA-4096 keys is ~10 KB), and all of them.
MAX_METADATA_FIELD: Final = 64 * 1024
MAX_METADATA: Final = 256 * 1024
#: What a Bearer token may hold to travel in a header: visible ASCII (RFC 6750 §2.1).
_VISIBLE_ASCII: Final = re.compile(r"[\x21-\x7e]*")
#: 9999-12-31T23:59:59Z, the last second Python's datetime can represent.
MAX_TIMESTAMP: Final = 253_402_300_799


def timestamp(value: Any) -> int | None:
    """Seconds since the epoch, read leniently and clamped to :data:`MAX_TIMESTAMP`; 0 stays 0 (RFC 7591
    §3.2.1: the secret never expires); ``None`` when absent or not a usable time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return min(value, MAX_TIMESTAMP) if value >= 0 else None
    if isinstance(value, float):
        return min(int(value), MAX_TIMESTAMP) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii():
            return None  # float() and int() would read Arabic-Indic and other digits
        if text.isdigit():
            # Past 12 digits the value is beyond MAX_TIMESTAMP anyway: no need to build a huge int.
            return min(int(text), MAX_TIMESTAMP) if len(text) <= 12 else MAX_TIMESTAMP
        if len(text) > 40:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
        return timestamp(number)
    return None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _first_unprintable(text: str) -> str | None:
    position = first_unprintable(text)
    return None if position is None else f"U+{ord(text[position]):04X} at position {position}"


def client_id(value: Any) -> str:
    """The ``client_id`` of an answer; ProtocolError when it is missing or unusable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ProtocolError("RFC 7591 §3.2.1: the response has no client_id")
    if not isinstance(value, str):
        raise ProtocolError(f"RFC 7591 §3.2.1: client_id must be a string, the AS sent {_type_name(value)}")
    if len(value) > MAX_CLIENT_ID:
        raise ProtocolError(f"RFC 7591 §3.2.1: the client_id is {len(value)} characters long; clientreg accepts "
                            f"at most {MAX_CLIENT_ID}")
    bad = _first_unprintable(value)
    if bad:
        raise ProtocolError(f"RFC 7591 §3.2.1: the client_id holds a control or bidirectional-formatting "
                            f"character ({bad}); RFC 6749 Appendix A.1 allows visible characters only")
    text: str = value
    return text


def _credential(name: str, value: Any, *, limit: int, header_safe: bool, rule: str) -> SecretStr | None:
    # Never stripped: whitespace could be part of a credential. None and "" mean "not sent".
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{rule}: {name} must be a string, the AS sent {_type_name(value)}; nothing was "
                            "kept, since credentials of another type cannot be used")
    if len(value) > limit:
        raise ProtocolError(f"{rule}: the {name} is {len(value)} characters long; clientreg accepts at most "
                            f"{limit}")
    if header_safe:
        if not _VISIBLE_ASCII.fullmatch(value):
            raise ProtocolError(f"{rule}: the {name} holds characters other than visible ASCII, so it cannot "
                                "be sent as a Bearer token (RFC 6750 §2.1)")
    else:
        position = first_unprintable(value)
        if position is not None:
            # The position only: the character could be the one piece of the secret a reader learns.
            raise ProtocolError(f"{rule}: the {name} holds a control character at position {position}; "
                                "RFC 6749 Appendix A.2 allows visible characters only")
    return SecretStr(value)


def client_secret(value: Any) -> SecretStr | None:
    return _credential("client_secret", value, limit=MAX_CLIENT_SECRET, header_safe=False,
                       rule="RFC 7591 §3.2.1")


def registration_access_token(value: Any) -> SecretStr | None:
    return _credential("registration_access_token", value, limit=MAX_REGISTRATION_ACCESS_TOKEN,
                       header_safe=True, rule="RFC 7592 §3")


def registration_client_uri(value: Any) -> str | None:
    """An absolute https URL (or http to a loopback host; whether that is used is the HttpClient's call)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"RFC 7592 §3: registration_client_uri must be a string, the AS sent "
                            f"{_type_name(value)}")
    uri: str = value.strip()
    if len(uri) > MAX_URI:
        raise ProtocolError(f"RFC 7592 §3: the registration_client_uri is {len(uri)} characters long; "
                            f"clientreg accepts at most {MAX_URI}")
    try:
        check_url(uri, allow_insecure_loopback=True)
    except ClientregError as exc:
        raise ProtocolError(f"RFC 7592 §3: the registration_client_uri is not a usable URL: {exc.message}") from None
    return uri


def metadata(fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The client metadata fields of an answer, bounded as the module docstring says (order kept)."""
    answer = dict(fields)
    if len(json.dumps(answer, ensure_ascii=False, default=str).encode()) <= MAX_METADATA_FIELD:
        return answer  # no field can be over the field bound, nor all of them over the total: one dump, not one each
    sizes: dict[str, int] = {}
    kept: dict[str, Any] = {}
    for name, value in answer.items():
        size = len(json.dumps({name: value}, ensure_ascii=False, default=str).encode())
        if size <= MAX_METADATA_FIELD:
            kept[name], sizes[name] = value, size
    total = sum(sizes.values())
    for name in sorted(sizes, key=lambda n: sizes[n], reverse=True):
        if total <= MAX_METADATA:
            break
        del kept[name]
        total -= sizes[name]
    return kept
