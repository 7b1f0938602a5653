"""Public JWK Sets only: what a client registers as ``jwks`` or publishes is read by the world.

RFC 7591 §2 defines ``jwks`` as the client's JWK Set "which contains the client's public keys"; a CIMD
document and a JWKS at ``jwks_uri`` are public web documents. A private key member written there by
mistake (a whole key pair pasted from a generator) would be registered at the AS, shown in its admin
pages, and served to anyone by the operator. So a JWK that carries private key material, or a
symmetric key, is refused wherever one can enter:

- in the models (``spec.jwks`` of an OAuthClient, hence the CLI, the CRD-backed operator and the
  Pulumi provider alike), through :data:`PublicJwks`;
- when a document is rendered for publication (:func:`clientreg.publish.render`), through
  :func:`check_public`, so that a record written before this check never serves one either.

The member names are those RFC 7518 and RFC 8037 define as private: ``d`` (EC, OKP, RSA private
exponent), ``p``, ``q``, ``dp``, ``dq``, ``qi``, ``oth`` (RSA, RFC 7518 §6.3.2) and ``k`` (the key value
of ``kty: oct``, RFC 7518 §6.4.1). Error messages name the member by its path and never quote a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AfterValidator

from .errors import ConfigurationError

__all__ = ["PRIVATE_MEMBERS", "PublicJwks", "check_public", "problems"]

#: JWK members that hold private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

_RULE = "a client's jwks \"contains the client's public keys\" (RFC 7591 §2)"


def _walk(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object below ``value`` that is a JWK (has ``kty``), with its path (``.keys[0]``)."""
    if isinstance(value, dict):
        if "kty" in value:
            yield path, value
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def problems(value: Any, path: str = "") -> list[str]:
    """What makes ``value`` (a JWK Set, or any document holding JWKs) non-public: one line per member,
    each naming its path below ``path``. Empty when every JWK in it is a public key."""
    found: list[str] = []
    for where, jwk in _walk(value, path):
        if jwk.get("kty") == "oct":
            found.append(f"{where}.kty: a symmetric key (kty 'oct', RFC 7518 §6.4) is a shared secret and must not be "
                         f"registered or published: {_RULE}")
        for member in PRIVATE_MEMBERS:
            if member in jwk and not (member == "k" and jwk.get("kty") == "oct"):
                found.append(f"{where}.{member}: private key member '{member}' (RFC 7518 §6, RFC 8037 §2) must not be "
                             f"registered or published: {_RULE}; remove it")
    return found


def check_public(value: Any, *, what: str = "document") -> None:
    """Raise :class:`~clientreg.errors.ConfigurationError` when ``value`` holds any private JWK member."""
    found = problems(value)
    if found:
        raise ConfigurationError(f"{what}: {_first(found).lstrip('.')}", rule="RFC 7591 §2")


def _first(found: list[str]) -> str:
    return found[0] + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")


def _validate_jwks(value: dict[str, Any]) -> dict[str, Any]:
    # RFC 7517 §5: a JWK Set is an object with a "keys" array of JWK objects, each with a "kty" (§4.1).
    keys = value.get("keys")
    if not isinstance(keys, list):
        raise ValueError(".keys: a JWK Set must have a 'keys' array (RFC 7517 §5)")
    for i, jwk in enumerate(keys):
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
            raise ValueError(f".keys[{i}]: each key must be a JSON object with a 'kty' string (RFC 7517 §4.1)")
    found = problems(value)
    if found:
        # A leading ".keys[0].d: " is the member's path below the field: validation_message appends it.
        raise ValueError(_first(found))
    return value


#: The type of ``spec.jwks``: a JWK Set of public keys.
PublicJwks = Annotated[dict[str, Any], AfterValidator(_validate_jwks)]
