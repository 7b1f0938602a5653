"""What the dynamic provider returns to Pulumi: the outputs of one client, its status, and the record.

The registration record lives in the resource's outputs (``record``, a Pulumi secret); everything else is
derived from it, from the arguments (echoed so that ``diff`` can compare), and from the core's status
(:mod:`clientreg.report`: the one mapping every front end uses, so ``status`` and ``status_message`` never
contradict each other).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from clientreg import publish
from clientreg.reasons import Reason
from clientreg.record import RegistrationRecord
from clientreg.report import Status

from . import args

#: `status` output values besides the core's reasons.
STATUS_IN_SYNC = str(Reason.IN_SYNC)
STATUS_FAILED = "Failed"
#: Left by refresh: the Secret of ``kubernetes_secret`` was deleted or changed in the cluster.
STATUS_SECRET_DRIFT = "KubernetesSecretDrift"
#: Statuses left by refresh or a failed step that the next `up` must act on. Not CredentialsRejected: with
#: the registration access token refused the client may still live at the AS (someone rotated the token
#: with a PUT), and acting would register a second client beside it; the user decides (see refresh.py).
NEEDS_UPDATE = frozenset({str(Reason.DRIFT), str(Reason.CLIENT_GONE), STATUS_FAILED, STATUS_SECRET_DRIFT})

#: Outputs that never change without a new client: reported as stables when no rotation is due.
CLIENT_OUTPUTS = ("client_id", "client_secret", "client_secret_expires_at", "client_id_issued_at",
                  "registration_client_uri", "issuer", "token_endpoint")


def record_of(props: Mapping[str, Any]) -> RegistrationRecord | None:
    stored = props.get("record")
    return RegistrationRecord.from_storage(dict(stored)) if isinstance(stored, Mapping) and stored else None


def credentials_of(record: RegistrationRecord | None) -> tuple[Any, ...] | None:
    """What must never be lost once the AS handed it out: the clients and their tokens."""
    if record is None:
        return None
    # Key ids too: a key pair generated in a run that fails later exists nowhere else (its public half
    # may already be registered), so a new kid alone makes the run keep its record.
    return (record.client_id, plain(record.registration_access_token), plain(record.client_secret),
            tuple((old.client_id, plain(old.registration_access_token)) for old in record.retiring),
            tuple(key.kid for key in record.keys))


def plain(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def credential_outputs(record: RegistrationRecord) -> dict[str, Any]:
    key = record.current_key()
    return {
        "client_id": record.client_id,
        "client_secret": plain(record.client_secret),
        "client_secret_expires_at": record.client_secret_expires_at or 0,
        "client_id_issued_at": record.client_id_issued_at,
        "registration_client_uri": record.registration_client_uri,
        "registration_access_token": plain(record.registration_access_token),
        "retiring_client_ids": [old.client_id for old in record.retiring],
        "last_rotation": record.last_rotation.isoformat() if record.last_rotation else None,
        # private_key_jwt: the current key (a secret output, like client_secret) and its JWS header values.
        "private_key": plain(key.private_key) if key is not None else None,
        "key_id": key.kid if key is not None else None,
        "key_algorithm": key.algorithm if key is not None else None,
        "published_documents": published_documents(record),
        "record": record.to_storage(),
    }


def published_documents(record: RegistrationRecord) -> dict[str, str]:
    """URL → the JSON text to serve there (CIMD, JWKS at jwks_uri), as ``clientreg apply --publish-dir``
    writes it. Public by definition: only public keys reach these documents."""
    return {url: publish.render(doc).decode("utf-8") for url, doc in publish.documents(record).items()}


def outputs(props: Mapping[str, Any], record: RegistrationRecord, status: Status) -> dict[str, Any]:
    """The outputs after a create or update: the echoed arguments, the credentials, the status."""
    outs: dict[str, Any] = {name: props[name] for name in (*args.ECHOED_ARGS, *args.INTERNAL_ARGS)
                            if props.get(name) is not None}
    outs.update(credential_outputs(record))
    outs.update(
        issuer=props.get("issuer") or record.issuer,
        token_endpoint=props.get("token_endpoint") or record.token_endpoint,
        registered_metadata=record.server_metadata,
    )
    outs.update(status_outputs(status))
    return outs


def status_outputs(status: Status) -> dict[str, Any]:
    """``status``, ``status_message`` and ``next_action_at``: the core's status, as every front end shows it."""
    return {"status": status.reason, "status_message": status.message,
            "next_action_at": status.next_due.isoformat() if status.next_due else None}


def show_live_value(outs: dict[str, Any], wire: str, value: Any) -> None:
    """Put a drifted value where the argument echo lives, so that ``preview --diff`` marks the property and
    shows `live => declared` (Pulumi's detailed diff compares these outputs with the arguments)."""
    name = args.arg_name(wire)
    if name is not None:
        outs[name] = value
    elif isinstance(outs.get("additional_metadata"), Mapping) and wire in outs["additional_metadata"]:
        outs["additional_metadata"] = {**outs["additional_metadata"], wire: value}
