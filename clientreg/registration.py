"""Carrying out a plan's client-changing actions: registration (RFC 7591), CIMD publication, RFC 7592
update, and the private_key_jwt keys they carry.

Every function persists through ``save`` after every answer from the AS, before the next request.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from . import keys as keypairs
from . import rfc7591, rfc7592
from .actions import Action, ActionKind
from .desired import Desired
from .drift import differences
from .errors import ClientregError, OperationUnsupported, StateError
from .observation import Observation, Observed, Save, absorb_credentials
from .reasons import Reason
from .record import ClientKey, RegistrationRecord, RetiringClient
from .server import ServerConnection
from .spec import request_metadata

log = logging.getLogger("clientreg.engine")


def _ensure_current_key(record: RegistrationRecord, desired: Desired, now: datetime) -> bool:
    """Give the record a current key of the declared algorithm; True when one was generated."""
    if desired.key_pair is None:
        return False
    current = record.current_key()
    if current is not None and current.algorithm == desired.key_pair.algorithm:
        return False
    _rotate_keys(record, desired, now)
    return True


def _rotate_keys(record: RegistrationRecord, desired: Desired, now: datetime) -> tuple[str, list[str]]:
    """A new current key; the old current one retires after the grace period. (new kid, old kids)."""
    assert desired.key_pair is not None
    new = keypairs.generate(desired.key_pair.algorithm, now=now, rsa_key_size=desired.key_pair.rsa_key_size)
    old: list[str] = []
    keys = []
    for key in record.keys:
        if key.remove_after is None:
            key = key.model_copy(update={"remove_after": now + desired.grace()})
            old.append(key.kid)
        keys.append(key)
    record.keys = [*keys, new]
    return new.kid, old


def _publish_keys(desired: Desired, record: RegistrationRecord, observed: Observation, server: ServerConnection,
                  save: Save) -> None:
    """Make the record's key set reach the AS. The keys are saved first: a private key the AS accepts
    must never exist only in memory."""
    save(record)
    if record.registration == "cimd":
        assert desired.client_id_url is not None
        record.server_metadata = _render_cimd(desired.with_keys(record))
        save(record)
    elif "jwks_uri" not in desired.metadata and record.registration_client_uri is not None:
        _update(desired.with_keys(record), record, observed, server, save)


def _render_cimd(desired: Desired) -> dict[str, Any]:
    from .cimd import render_document

    assert desired.client_id_url is not None
    # The implied wire values too (response_types: [] for client_credentials-only clients): an AS reads
    # the document as if it were a registration request.
    return render_document(desired.client_id_url, request_metadata(desired.metadata))


def _keys_for(action: Action, desired: Desired, previous: RegistrationRecord | None,
              now: datetime) -> list[ClientKey]:
    """The keys a (re-)registration carries: the previous ones (a client re-registered after it vanished
    keeps working with the same key), a fresh one on rotation or when none is current."""
    if desired.key_pair is None:
        return []
    holder = RegistrationRecord(client_id="-", keys=list(previous.keys) if previous else [])
    if action.kind is ActionKind.REGISTER_REPLACEMENT and holder.keys:
        _rotate_keys(holder, desired, now)
    else:
        _ensure_current_key(holder, desired, now)
    return holder.keys


def _register(action: Action, desired: Desired, previous: RegistrationRecord | None,
              server: ServerConnection, save: Save, now: datetime) -> RegistrationRecord:
    keys = _keys_for(action, desired, previous, now)
    desired = desired.with_key_list(keys)
    server.check_policy(desired.metadata)
    if desired.registration == "cimd":
        return _publish_cimd(desired, previous, keys, server, save, now)
    # Credentials first: a missing initial access token is a wait, and waiting costs no request.
    iat, statement = server.initial_access_token, server.software_statement
    endpoint = server.registration_endpoint
    info = rfc7591.register(server.http, endpoint, request_metadata(desired.metadata),
                            initial_access_token=iat, software_statement=statement)
    record = RegistrationRecord(
        client_id=info.client_id, client_secret=info.client_secret,
        client_secret_expires_at=info.client_secret_expires_at, client_id_issued_at=info.client_id_issued_at,
        registration_client_uri=info.registration_client_uri,
        registration_access_token=info.registration_access_token,
        registration_endpoint=endpoint, spec_hash=desired.spec_hash, server_metadata=info.metadata,
        registered_at=now, rotation_request=desired.rotation_request,
        retiring=list(previous.retiring) if previous else [], keys=keys,
    )
    if previous is not None:
        record.rotation_request = desired.rotation_request or previous.rotation_request
        record.last_rotation = now
        if action.reason is not Reason.CLIENT_GONE:
            # The old client may still be serving workloads (rotation) or may be unreachable with our
            # credentials (rejected RAT); either way it is deleted after the grace period, best effort.
            grace = desired.grace() if action.kind is ActionKind.REGISTER_REPLACEMENT else timedelta(0)
            record.retiring.append(RetiringClient(
                client_id=previous.client_id, registration_client_uri=previous.registration_client_uri,
                registration_access_token=previous.registration_access_token, delete_after=now + grace,
                reason=str(action.reason)))
    _note_refusals(record, desired, info.metadata)
    # Endpoints already known without a request go into the same first write; anything needing
    # discovery waits until the registration is safe on disk.
    record.issuer, record.token_endpoint = server.known_endpoints()
    _persist_registration(record, save)
    if server.spec.issuer and (record.issuer is None or record.token_endpoint is None):
        try:
            record.issuer = server.issuer
            record.token_endpoint = server.token_endpoint
        except ClientregError as exc:
            log.warning("could not read the token endpoint of %s: %s", server, exc)
        else:
            save(record)
    return record


def _persist_registration(record: RegistrationRecord, save: Save) -> None:
    try:
        save(record)
    except Exception as exc:
        # The crash window: the AS holds a client we could not write down. Say which, never the secret.
        log.error("registered client %s but could not persist it (%s): delete it at the AS by hand",
                  record.client_id, type(exc).__name__)
        raise StateError(f"registered client {record.client_id} but could not persist the result: "
                         f"{type(exc).__name__}; delete that client at the AS by hand") from exc


def _publish_cimd(desired: Desired, previous: RegistrationRecord | None, keys: list[ClientKey],
                  server: ServerConnection, save: Save, now: datetime) -> RegistrationRecord:
    if not server.supports_cimd:
        raise OperationUnsupported(
            "the AS does not advertise client_id_metadata_document_supported (CIMD §5): use registration: dcr")
    assert desired.client_id_url is not None
    document = _render_cimd(desired)
    record = RegistrationRecord(client_id=desired.client_id_url, registration="cimd",
                                spec_hash=desired.spec_hash, server_metadata=document,
                                registered_at=previous.registered_at if previous else now,
                                issuer=server.issuer, token_endpoint=server.token_endpoint,
                                last_rotation=previous.last_rotation if previous else None,
                                rotation_request=previous.rotation_request if previous else desired.rotation_request,
                                declared_fields=sorted(desired.metadata), keys=keys)
    save(record)
    return record


def _update(desired: Desired, record: RegistrationRecord, observed: Observation, server: ServerConnection,
            save: Save) -> RegistrationRecord:
    assert record.registration_client_uri is not None and record.registration_access_token is not None
    server.check_policy(desired.metadata)
    if observed.state is Observed.PRESENT and observed.info is not None:
        current = observed.info
    else:
        current = rfc7592.read(server.http, record.registration_client_uri, record.registration_access_token)
        if absorb_credentials(record, current):
            save(record)
    # RFC 7592 §2.2: PUT replaces everything; start from what the AS holds so undeclared server-side
    # settings survive, then lay the declared values over it. Fields the user stopped declaring go.
    body = {k: v for k, v in current.metadata.items() if k not in rfc7592.FIELDS_NOT_SENT_ON_UPDATE}
    for gone in set(record.declared_fields) - set(desired.metadata):
        body.pop(gone, None)
    body.update(request_metadata(desired.metadata))
    assert record.registration_access_token is not None and record.registration_client_uri is not None
    info = rfc7592.update(server.http, record.registration_client_uri, record.registration_access_token,
                          record.client_id, body)
    absorb_credentials(record, info)
    record.server_metadata = info.metadata
    record.spec_hash = desired.spec_hash
    record.declared_fields = sorted(desired.metadata)
    _note_refusals(record, desired, info.metadata)
    save(record)
    return record


def _note_refusals(record: RegistrationRecord, desired: Desired, returned: dict[str, Any]) -> None:
    record.refused = differences(desired.metadata, returned)
    record.refused_for_hash = desired.spec_hash if record.refused else None
    record.declared_fields = sorted(desired.metadata)

