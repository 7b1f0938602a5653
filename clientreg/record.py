"""The registration record: everything clientreg must remember about one client between runs.

It is the unit of persistence for every front end (a state file for the CLI, an operator-only Secret
in Kubernetes, resource outputs in Pulumi). Credentials are ``SecretStr``: a record's repr and
``model_dump()`` never reveal them; :meth:`RegistrationRecord.to_storage` is the one way out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

RECORD_VERSION = 1


class RetiringClient(BaseModel):
    """An old client kept alive until workloads moved to its successor."""

    model_config = ConfigDict(extra="ignore")
    client_id: str
    registration_client_uri: str | None = None
    registration_access_token: SecretStr | None = None
    delete_after: datetime
    reason: str = "Rotated"


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

    def expires_at(self) -> datetime | None:
        """When the secret stops working; None when it never expires (RFC 7591: 0 means never)."""
        if not self.client_secret_expires_at:
            return None
        return datetime.fromtimestamp(self.client_secret_expires_at, UTC)

    def to_storage(self) -> dict[str, Any]:
        """JSON-ready dict WITH secrets revealed: only for the store, never for output."""
        data = self.model_dump(mode="json")
        data["client_secret"] = _reveal(self.client_secret)
        data["registration_access_token"] = _reveal(self.registration_access_token)
        for out, old in zip(data["retiring"], self.retiring, strict=True):
            out["registration_access_token"] = _reveal(old.registration_access_token)
        return data

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> RegistrationRecord:
        return cls.model_validate(data)


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
