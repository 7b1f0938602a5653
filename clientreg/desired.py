"""What one OAuthClient asks for, front-end independent: the engine's input besides the record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from . import keys as keypairs
from .record import ClientKey, RegistrationRecord
from .spec import KeyPair, OAuthClient, Rotation


@dataclass(frozen=True)
class Desired:
    """What one OAuthClient asks for, front-end independent."""

    key: str
    metadata: dict[str, Any]
    spec_hash: str
    registration: Literal["dcr", "cimd"] = "dcr"
    client_id_url: str | None = None
    rotation: Rotation | None = None
    deletion_policy: Literal["Delete", "Orphan"] = "Delete"
    deleting: bool = False
    rotation_request: str | None = None
    #: private_key_jwt keys clientreg generates and holds; the declared jwks is derived from the record.
    key_pair: KeyPair | None = None

    @classmethod
    def from_client(cls, client: OAuthClient, *, deleting: bool = False,
                    rotation_request: str | None = None) -> Desired:
        spec = client.spec
        return cls(key=f"{client.metadata.namespace or 'default'}/{client.metadata.name}",
                   metadata=spec.wire_metadata(), spec_hash=spec.spec_hash(), registration=spec.registration,
                   client_id_url=spec.client_id_url, rotation=spec.rotation,
                   deletion_policy=spec.deletion_policy, deleting=deleting, rotation_request=rotation_request,
                   key_pair=spec.key_pair)

    def grace(self) -> timedelta:
        return self.rotation.grace() if self.rotation else timedelta(minutes=10)

    def with_keys(self, record: RegistrationRecord | None) -> Desired:
        """This Desired with the ``jwks`` its record's keys imply, unless the keys are published at a
        jwks_uri: what is declared, registered and compared for drift is the public half of the keys
        clientreg holds."""
        return self.with_key_list(record.keys if record is not None else [])

    def with_key_list(self, keys: list[ClientKey]) -> Desired:
        if self.key_pair is None or not keys or "jwks_uri" in self.metadata:
            return self
        return replace(self, metadata={**self.metadata, "jwks": keypairs.jwks(keys)})


__all__ = ["Desired"]
