"""Client key pairs for ``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect Core §9).

clientreg generates the key pair, keeps the private key in the registration record (a ``SecretStr``)
and registers only the public half: as ``jwks`` at the AS, or in a published document (a Client ID
Metadata Document, a JWKS at ``jwks_uri``). Rotation keeps the old key in the JWKS for a grace period
so that workloads still holding it keep working while they move to the new one.

The ``kid`` is the RFC 7638 thumbprint: it names the key by its content, so two records can never
disagree about which key a ``kid`` means, and a re-rendered JWKS is byte-for-byte stable.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from pydantic import SecretStr

from .errors import ConfigurationError
from .record import ClientKey

__all__ = [
    "ASSERTION_LIFETIME",
    "ASSERTION_TYPE",
    "Algorithm",
    "client_assertion",
    "generate",
    "jwks",
    "public_jwk",
]

#: RFC 7523 §2.2 ``client_assertion_type``.
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Short on purpose: an assertion is a bearer credential until it expires (RFC 7523 §3 "exp"), and the
#: AS must remember each ``jti`` that long to refuse replays.
ASSERTION_LIFETIME: Final = timedelta(seconds=60)

# EdDSA is left out: joserfc (and so Authlib-based servers, the dev AS among them) does not accept it by
# default, and support elsewhere is uneven. ES256 is the default: small keys, fast, supported everywhere.
Algorithm = Literal["ES256", "RS256"]
ALGORITHMS: Final[tuple[str, ...]] = ("ES256", "RS256")


def _private_pem(algorithm: str, rsa_key_size: int) -> bytes:
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=rsa_key_size)
    else:
        raise ConfigurationError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}",
                                 field="spec.keyPair.algorithm")
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _import(pem: str, algorithm: str) -> ECKey | RSAKey:
    if algorithm == "ES256":
        return ECKey.import_key(pem)
    if algorithm == "RS256":
        return RSAKey.import_key(pem)
    raise ConfigurationError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}",
                             field="spec.keyPair.algorithm")


def generate(algorithm: str = "ES256", *, now: datetime, rsa_key_size: int = 2048) -> ClientKey:
    """A new key pair: the private key as PEM (PKCS#8), the public JWK with its RFC 7638 ``kid``."""
    pem = _private_pem(algorithm, rsa_key_size).decode("ascii")
    key = _import(pem, algorithm)
    kid = key.thumbprint()
    public: dict[str, Any] = {**key.as_dict(private=False), "kid": kid, "alg": algorithm, "use": "sig"}
    return ClientKey(kid=kid, algorithm=algorithm, private_key=SecretStr(pem), public_jwk=public,
                     created_at=now)


def public_jwk(key: ClientKey) -> dict[str, Any]:
    """The public JWK as registered: ``kid``, ``alg`` and ``use`` set (RFC 7517 §4)."""
    return dict(key.public_jwk)


def jwks(keys: Iterable[ClientKey]) -> dict[str, Any]:
    """The JWK Set to register or publish (RFC 7517 §5): public keys only, newest first."""
    ordered = sorted(keys, key=lambda k: k.created_at, reverse=True)
    return {"keys": [public_jwk(k) for k in ordered]}


def client_assertion(key: ClientKey, client_id: str, audience: str | Sequence[str], *, now: datetime,
                     lifetime: timedelta = ASSERTION_LIFETIME, jti: str | None = None) -> str:
    """A signed client authentication JWT (RFC 7523 §3; OpenID Connect Core §9 ``private_key_jwt``).

    ``iss`` and ``sub`` are the client ID; ``aud`` identifies the AS: its token endpoint URL (RFC 7523
    §3, and what Ory Hydra insists on) or its issuer; ``jti`` is random and ``exp`` short so that a
    leaked assertion is useless within a minute and cannot be replayed before that.
    """
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience if isinstance(audience, str) else list(audience),
        "jti": jti or secrets.token_urlsafe(24),
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
    }
    header = {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, claims, _import(key.private_key.get_secret_value(), key.algorithm))

