"""The registration record: everything clientreg must remember about one client between runs.

It is the unit of persistence for every front end (a state file for the CLI, an operator-only Secret
in Kubernetes, resource outputs in Pulumi). Credentials are ``SecretStr``: a record's repr and
``model_dump()`` never reveal them; :meth:`RegistrationRecord.to_storage` is the one way out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .issued import timestamp

RECORD_VERSION = 1


class RetiringClient(BaseModel):
    """An old client kept alive until workloads moved to its successor."""

    model_config = ConfigDict(extra="ignore")
    client_id: str
    registration_client_uri: str | None = None
    registration_access_token: SecretStr | None = None
    delete_after: datetime
    reason: str = "Rotated"
    #: DELETEs the AS refused with 401 (see :mod:`clientreg.retiring`): never taken for "gone".
    delete_refusals: int = 0
    #: A DELETE was sent and its answer never recorded (the process died, the answer was lost).
    delete_pending: bool = False


class ClientKey(BaseModel):
    """One key pair of a ``private_key_jwt`` client (see :mod:`clientreg.keys`).

    ``remove_after`` is None for the current key; a retiring key keeps working (it stays in the
    registered JWKS) until then, and is dropped from the JWKS at the AS once that time has passed.
    """

    model_config = ConfigDict(extra="ignore")
    kid: str
    algorithm: str
    #: PKCS#8 PEM. Only :meth:`RegistrationRecord.to_storage` and the credentials output reveal it.
    private_key: SecretStr
    public_jwk: dict[str, Any]
    created_at: datetime
    remove_after: datetime | None = None


class RegistrationRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    version: int = RECORD_VERSION
    client_id: str
    client_secret: SecretStr | None = None
    client_secret_expires_at: int | None = None
    client_id_issued_at: int | None = None
    registration_client_uri: str | None = None
    registration_access_token: SecretStr | None = None
    issuer: str | None = None
    token_endpoint: str | None = None
    registration_endpoint: str | None = None
    registration: str = "dcr"
    #: spec_hash() of the spec this record was last registered/updated for.
    spec_hash: str = ""
    #: The metadata the AS returned last (the truth about the client), credentials excluded.
    server_metadata: dict[str, Any] = Field(default_factory=dict)
    #: Declared values the AS did not keep, by wire name, with the hash of the spec they belong to.
    refused: dict[str, Any] = Field(default_factory=dict)
    refused_for_hash: str | None = None
    #: Wire names the spec declared when last applied: a field dropped from the spec is removed on update.
    declared_fields: list[str] = Field(default_factory=list)
    registered_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    last_rotation: datetime | None = None
    #: The last rotation request honoured (annotation value, Pulumi trigger, CLI request id).
    rotation_request: str | None = None
    retiring: list[RetiringClient] = Field(default_factory=list)
    #: private_key_jwt key pairs clientreg generated: the current one and those retiring. Their public
    #: halves are the client's declared ``jwks`` (or the JWKS published at its ``jwks_uri``).
    keys: list[ClientKey] = Field(default_factory=list)
    #: The ``deletionPolicy`` declared when last applied, for front ends that delete without the spec at
    #: hand (``clientreg delete NAME``). None: unknown (a record written before it was kept).
    deletion_policy: Literal["Delete", "Orphan"] | None = None

    @field_validator("client_secret_expires_at", "client_id_issued_at", mode="before")
    @classmethod
    def _clamped(cls, value: Any) -> int | None:
        # Records saved before answers were checked may hold 10**30 or "never": read them as the parse of an
        # answer would (clamped, or not said), so that no stored value can crash a later run.
        return timestamp(value)

    def current_key(self) -> ClientKey | None:
        """The key workloads sign with: the newest one not retiring."""
        current = [k for k in self.keys if k.remove_after is None]
        return max(current, key=lambda k: k.created_at) if current else None

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set of every key still valid (current and retiring), newest first."""
        ordered = sorted(self.keys, key=lambda k: k.created_at, reverse=True)
        return {"keys": [dict(k.public_jwk) for k in ordered]}

    def credentials(self) -> dict[str, str]:
        """What workloads need, secrets revealed: for the CLI's ``credentials``, Secrets and outputs.

        A ``private_key_jwt`` client gets ``private_key`` (PEM), ``key_id`` and ``key_algorithm``
        instead of ``client_secret``: the JWKS at the AS holds only public keys.
        """
        out = {"client_id": self.client_id}
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret.get_secret_value()
        key = self.current_key()
        if key is not None:
            out.update(private_key=key.private_key.get_secret_value(), key_id=key.kid,
                       key_algorithm=key.algorithm)
        if self.issuer:
            out["issuer"] = self.issuer
        if self.token_endpoint:
            out["token_endpoint"] = self.token_endpoint
        return out

    def expires_at(self) -> datetime | None:
        """When the secret stops working; None when it never expires (RFC 7591: 0 means never)."""
        if not self.client_secret_expires_at:
            return None
        return datetime.fromtimestamp(self.client_secret_expires_at, UTC)

    def to_storage(self) -> dict[str, Any]:
        """JSON-ready dict WITH secrets revealed: only for the store, never for output."""
        data = self.model_dump(mode="json")
        if data["deletion_policy"] is None:  # unknown: stored as before the field existed
            del data["deletion_policy"]
        data["client_secret"] = _reveal(self.client_secret)
        data["registration_access_token"] = _reveal(self.registration_access_token)
        for out, old in zip(data["retiring"], self.retiring, strict=True):
            out["registration_access_token"] = _reveal(old.registration_access_token)
        for out, key in zip(data["keys"], self.keys, strict=True):
            out["private_key"] = key.private_key.get_secret_value()
        return data

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> RegistrationRecord:
        return cls.model_validate(data)


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
